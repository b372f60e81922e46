package imdswatch

import (
	"errors"
	"net/netip"
)

// ErrNotAvailable wraps every reason the watcher cannot run here (not Linux, a kernel without
// the hooks, no CAP_BPF, no cgroup v2): the checks then say NOT_AVAILABLE with the reason.
var ErrNotAvailable = errors.New("IMDS watcher not available")

// DefaultDests are IMDS's addresses: IPv4 and the Nitro IPv6 endpoint, port 80.
var DefaultDests = []netip.AddrPort{
	netip.MustParseAddrPort("169.254.169.254:80"),
	netip.MustParseAddrPort("[fd00:ec2::254]:80"),
}

// Options configure Load.
type Options struct {
	// Dests are the destinations watched, at most 16; nil means DefaultDests. Callers add the
	// address of AWS_EC2_METADATA_SERVICE_ENDPOINT when it names an IP literal (EndpointDest).
	Dests []netip.AddrPort
	// Cgroup is the cgroup v2 directory the programs attach to; "" finds the root of the
	// host's cgroup2 mount.
	Cgroup string
}

// Stats are the kernel side's counters.
type Stats struct {
	Events     uint64 `json:"events"`      // requests reported
	Dropped    uint64 `json:"dropped"`     // requests lost: the ring buffer was full
	Sockets    uint64 `json:"sockets"`     // IMDS connections watched
	SocketsErr uint64 `json:"sockets_err"` // IMDS connections that could not be watched
}
