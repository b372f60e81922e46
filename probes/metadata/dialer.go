package metadata

import (
	"errors"
	"time"
)

// Dialer dials IMDS for ec2sec's own requests (the SDK client's, the imds probe's raw ones).
// On Linux, for an IP endpoint, its connections wait on Go's network poller and on a short
// timer both. A scan keeps every core busy, and Go then looks at the poller only when a core
// runs out of work or every 10 ms (sysmon), while timers are served at every scheduling
// point: IMDS answers within a millisecond, but each round trip to it waited 10-20 ms for the
// poller, and the imds probe makes several in a row. When the timer ends a wait, the socket
// is simply tried again; the timer grows with the time waited (1/8 of it, at most 10 ms), so
// a slow or absent IMDS costs few wake-ups, and an idle process is woken by the poller.
//
// The zero Dialer is ready to use. Elsewhere, or for a host name, it is a net.Dialer.
type Dialer struct {
	// Timeout bounds the connect (0: only the context does).
	Timeout time.Duration
	// MinTTL, when > 0, makes the socket drop segments whose IP TTL (IPv6 hop limit) is below
	// it (IP_MINTTL, IPV6_MINHOPCOUNT; Linux only). The kernel counts each such drop on the
	// socket (SO_MEMINFO, Linux 4.7+): a connection whose socket dropped a segment before it
	// received anything fails with ErrBelowMinTTL at once, while dial or read is waiting,
	// since its answer came with a lower TTL and so will every resend of it.
	MinTTL int
	// IgnoreDrops waits for answers only, as on a kernel that does not count a socket's
	// drops (for tests of that path).
	IgnoreDrops bool
}

// ErrBelowMinTTL means the connection's socket dropped what IMDS sent because its TTL was
// below the Dialer's MinTTL.
var ErrBelowMinTTL = errors.New("the answer's TTL is below the minimum: dropped by the kernel")

// pollStep is how long a connection waits before trying its socket again, having waited
// waited: short at first (IMDS answers within a millisecond), then 1/8 of the wait.
func pollStep(waited time.Duration) time.Duration {
	return min(max(waited/8, 50*time.Microsecond), 10*time.Millisecond)
}
