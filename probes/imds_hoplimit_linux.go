package probes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// measureHopLimit finds the IP TTL (IPv6 hop limit) that IMDS puts on its token response,
// which is the instance's HttpPutResponseHopLimit. Linux cannot report a TCP segment's TTL,
// but a socket with IP_MINTTL=n drops every segment whose TTL is below n: a token PUT that
// still gets its answer with IP_MINTTL=n proves the limit is at least n. Successes are
// certain and failures cost a timeout, so the search checks 2 first (the common, compliant
// answer is then one short timeout) and confirms the final failure once more with a longer
// timeout before believing it.
//
// Where the kernel counts the segments it drops for a minimum TTL (TcpExt TCPMinTTLDrop,
// Linux 5.16+), a failure need not cost a timeout: drops seen while attempts wait, with no
// answer within a short grace after them, are the attempts' answers being dropped. The
// counter is per network namespace, so a drop of another socket's (a BGP daemon using GTSM)
// could be mistaken for ours: a final failure is then decided by two attempts sent at once,
// which must see two drops. The first pair goes out alongside the baseline PUT: on a
// compliant instance the whole measurement is one round trip and one grace.
func measureHopLimit(ctx context.Context, endpoint string, timeout time.Duration) (int, error) {
	return measureHopLimitWith(ctx, endpoint, timeout, minTTLDrops)
}

// measureHopLimitWith is measureHopLimit with the drop counter given (nil = none: timeouts
// only).
func measureHopLimitWith(ctx context.Context, endpoint string, timeout time.Duration, drops func() (uint64, bool)) (int, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() == "" {
		return 0, fmt.Errorf("bad IMDS endpoint %q", endpoint)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil {
		return 0, fmt.Errorf("IMDS endpoint %q is not an IP address; the hop limit is measured on the wire", u.Hostname())
	}
	m := &hopMeter{endpoint: endpoint, v6: ip.To4() == nil, timeout: timeout, ready: make(chan struct{})}
	if drops != nil {
		if _, ok := drops(); ok {
			m.drops = drops
		}
	}

	// Baseline: a plain token PUT must work, and its round trip sizes the attempts' timeout
	// and the grace after a drop. It runs while the first attempts wait.
	go func() {
		defer close(m.ready)
		start := time.Now()
		netRTT, err := tokenPutRTT(ctx, endpoint, m.v6, timeout)
		if err == nil {
			rtt := time.Since(start)
			m.attempt = min(max(150*time.Millisecond, 20*rtt), timeout)
			// The grace only guards against another socket's drop coinciding with our
			// attempts (rare: a GTSM-protected BGP session hit by a low-TTL packet): an answer
			// that is only slow follows within a few network round trips. The kernel's RTT
			// of the baseline is the network's; the time the PUT took also holds the waits
			// of a scan that keeps every core busy (tens of milliseconds), used only without
			// it. Bounded either way.
			if netRTT <= 0 {
				netRTT = rtt
			}
			m.grace = min(max(10*time.Millisecond, 4*netRTT), 25*time.Millisecond)
		} else if ctx.Err() == nil {
			err = fmt.Errorf("token request failed: %w", err)
		}
		m.baseErr = err
	}()

	lo, hi := 1, 65 // lo answers; hi is the lowest known not to (hop limits are 1..64)
	for hi-lo > 1 {
		mid := lo + 1
		if lo > 1 {
			mid = (lo + hi) / 2
		}
		var got bool
		var err error
		switch {
		case mid > lo+1:
			got, err = m.round(ctx, mid, 1, 1)
		case m.drops != nil:
			// lo+1 failing ends the search: two attempts at once must both go unanswered,
			// with two drops counted.
			got, err = m.round(ctx, mid, 2, 3)
		default:
			// Without the counter, a failure is a timeout: confirm it with a longer one
			// before settling on lo, so a slow answer is not taken for a dropped one.
			if got, err = m.round(ctx, mid, 1, 1); err == nil && !got {
				got, err = m.round(ctx, mid, 1, 3)
			}
		}
		if err != nil {
			if berr := m.baseline(); berr != nil {
				return 0, berr
			}
			return 0, err
		}
		if got {
			lo = mid
		} else {
			hi = mid
		}
	}
	if err := m.baseline(); err != nil {
		return 0, err
	}
	return lo, nil
}

// hopMeter sends the token PUTs of one measurement.
type hopMeter struct {
	endpoint string
	v6       bool
	timeout  time.Duration         // bounds every request
	drops    func() (uint64, bool) // the kernel's drop counter; nil without one
	ready    chan struct{}         // closed when the baseline PUT is done; then these are set:
	baseErr  error                 // its outcome
	attempt  time.Duration         // how long an attempt waits for its answer
	grace    time.Duration         // how long an answer may trail a drop
}

// baseline waits for the baseline PUT and returns its error.
func (m *hopMeter) baseline() error {
	<-m.ready
	return m.baseErr
}

// round sends n token PUTs at once, each on its own connection whose socket drops segments
// with a TTL below minTTL, and says whether any was answered. Unanswered, it ends after wait
// times the attempt timeout; with the drop counter, also once the kernel has counted n drops
// since the round began and no answer came within the grace after them.
func (m *hopMeter) round(ctx context.Context, minTTL, n, wait int) (bool, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var since uint64
	if m.drops != nil {
		since, _ = m.drops()
	}
	answers := make(chan error, n)
	for range n {
		go func() { answers <- tokenPut(rctx, m.endpoint, minTTL, m.v6, m.timeout) }()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { m.watch(rctx, cancel, done, since, n, time.Duration(wait)) })
	defer func() { close(done); wg.Wait() }()

	var got bool
	var firstErr error
	for range n {
		err := <-answers
		switch {
		case err == nil:
			if !got {
				got = true
				cancel() // one answer decides the round: stop the others
			}
		case errors.Is(err, errDropped):
		case firstErr == nil:
			firstErr = err
		}
	}
	switch {
	case got:
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	case m.baseline() != nil:
		return false, m.baseline()
	}
	return false, firstErr
}

// watch ends a round (cancel) when its time is up or its answers were dropped. The timing
// comes from the baseline PUT, which may still be on its way.
func (m *hopMeter) watch(ctx context.Context, cancel context.CancelFunc, done <-chan struct{}, since uint64, n int, wait time.Duration) {
	start := time.Now()
	var drop <-chan time.Time // ticks while the counter is polled
	if m.drops != nil {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		drop = tick.C
	}
	var deadline <-chan time.Time
	ready := m.ready
	dropped := false
	for {
		select {
		case <-done:
			return
		case <-ready:
			ready = nil
			if m.baseline() != nil {
				cancel()
				return
			}
			t := time.NewTimer(max(wait*m.attempt-time.Since(start), 0))
			defer t.Stop()
			deadline = t.C
		case <-deadline:
			cancel()
			return
		case <-drop:
			if c, ok := m.drops(); ok && c >= since+uint64(n) {
				drop, dropped = nil, true
			}
		}
		if dropped && ready == nil {
			// n drops counted and the grace known: an answer has grace to follow.
			select {
			case <-done:
			case <-ctx.Done():
			case <-deadline:
				cancel()
			case <-time.After(m.grace):
				cancel()
			}
			return
		}
	}
}

// errDropped means no answer came back within the attempt's timeout: with IP_MINTTL set,
// that is the kernel discarding segments below the minimum TTL.
var errDropped = errors.New("no answer within the timeout")

// tokenPutRTT is tokenPut without a minimum TTL that also returns the kernel's smoothed
// round-trip time of its connection (TCP_INFO), 0 when the kernel does not say.
func tokenPutRTT(ctx context.Context, endpoint string, v6 bool, timeout time.Duration) (rtt time.Duration, err error) {
	err = tokenPutConn(ctx, endpoint, 0, v6, timeout, func(c net.Conn) {
		tc, ok := c.(*net.TCPConn)
		if !ok {
			return
		}
		raw, err := tc.SyscallConn()
		if err != nil {
			return
		}
		raw.Control(func(fd uintptr) {
			if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				rtt = time.Duration(info.Rtt) * time.Microsecond
			}
		})
	})
	return rtt, err
}

// tokenPut sends one IMDSv2 token PUT on a fresh connection whose socket drops segments with
// TTL (hop limit) below minTTL (0 = no minimum). Only the status matters; the token is
// discarded unread beyond a few bytes. An attempt that times out or is cancelled (its answer
// taken for dropped) returns errDropped.
func tokenPut(ctx context.Context, endpoint string, minTTL int, v6 bool, timeout time.Duration) error {
	return tokenPutConn(ctx, endpoint, minTTL, v6, timeout, nil)
}

// tokenPutConn is tokenPut that hands the connection to answered (when not nil) once the
// answer's headers are in, before the connection closes.
func tokenPutConn(ctx context.Context, endpoint string, minTTL int, v6 bool, timeout time.Duration, answered func(net.Conn)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := &net.Dialer{Timeout: timeout}
	if minTTL > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if v6 {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MINHOPCOUNT, minTTL)
				} else {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MINTTL, minTTL)
				}
			})
			if err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("set minimum TTL: %w", serr)
			}
			return nil
		}
	}
	var conn net.Conn // the one connection of this request (keep-alives off)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		conn = c
		return c, err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: dial, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, endpoint+"/latest/api/token", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return errDropped
		}
		return err
	}
	defer resp.Body.Close()
	if answered != nil && conn != nil {
		answered(conn)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token PUT answered HTTP %d", resp.StatusCode)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// minTTLDrops reads TcpExt TCPMinTTLDrop from this process's network namespace; false when
// the kernel does not count it.
func minTTLDrops() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/net/netstat")
	if err != nil {
		return 0, false
	}
	return parseMinTTLDrops(b)
}

// parseMinTTLDrops finds TCPMinTTLDrop in /proc/net/netstat: a "TcpExt:" line of names, then
// one of values.
func parseMinTTLDrops(b []byte) (uint64, bool) {
	var names []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		i := slices.Index(names, "TCPMinTTLDrop")
		if i < 0 || i >= len(f) {
			return 0, false
		}
		n, err := strconv.ParseUint(f[i], 10, 64)
		return n, err == nil
	}
	return 0, false
}
