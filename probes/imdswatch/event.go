// Package imdswatch watches which processes call the instance metadata service (IMDS), with
// or without a session token, using eBPF programs on the cgroup v2 root (Linux 5.8+; see
// docs/imds-watch.md). It holds the kernel side (the committed BPF object and its loader),
// the decoder of the kernel's events, the enrichment of an event into a caller (parent chain,
// executable, redacted command line, user, container or systemd unit, network namespace),
// and the bounded table of callers with its rolling 7-day summary.
package imdswatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Kind is what one request to IMDS was.
type Kind uint8

// The kinds the kernel side tells apart (KIND_* in bpf/imdswatch.c).
const (
	KindToken Kind = 1 // PUT /latest/api/token: a session token for IMDSv2
	KindV2    Kind = 2 // a request with the X-aws-ec2-metadata-token header
	KindV1    Kind = 3 // a request without it: IMDSv1
)

// String is the kind as reports show it.
func (k Kind) String() string {
	switch k {
	case KindToken:
		return "token"
	case KindV2:
		return "v2"
	case KindV1:
		return "v1"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event flags (FLAG_* in bpf/imdswatch.c).
const (
	FlagCreds     = 1 << 0 // the path held iam/security-credentials
	FlagTruncated = 1 << 1 // headers longer than the kernel reads: classified on what it saw
	FlagNoConnect = 1 << 2 // connected before the watcher: attributed when it wrote
	FlagSplit     = 1 << 3 // the request came in more than one write
)

// Event is one request to IMDS as the kernel saw it. It never holds a header value or a body.
type Event struct {
	// Monotonic is the kernel's CLOCK_MONOTONIC time of the request, in nanoseconds.
	Monotonic uint64
	// Cookie identifies the connection; Netns the caller's network namespace (cookie);
	// Cgroup the cgroup v2 id of the connecting task.
	Cookie, Netns, Cgroup uint64
	// Pid and Tgid are the connecting thread and process, UID and GID its credentials;
	// SendTgid and SendUID are the process that wrote the request (the same one, unless a
	// connection was handed over).
	Pid, Tgid, UID, GID uint32
	SendTgid, SendUID   uint32
	// RequestBytes is how much of the request the kernel read.
	RequestBytes uint16
	Kind         Kind
	Flags        uint8
	Writes       uint8
	Dest         netip.AddrPort
	// Comm is the connecting thread's name (at most 15 bytes).
	Comm string
}

// EventSize is the size of struct event in bpf/imdswatch.c.
const EventSize = 96

// ErrShortEvent is returned for a record shorter than EventSize.
var ErrShortEvent = errors.New("imdswatch: short event")

// DecodeEvent decodes one ring buffer record (little-endian, as on amd64 and arm64). It
// checks what the kernel promises (kind, family) and never panics on any input.
func DecodeEvent(b []byte) (Event, error) {
	if len(b) < EventSize {
		return Event{}, fmt.Errorf("%w: %d bytes, want %d", ErrShortEvent, len(b), EventSize)
	}
	le := binary.LittleEndian
	e := Event{
		Monotonic:    le.Uint64(b[0:]),
		Cookie:       le.Uint64(b[8:]),
		Netns:        le.Uint64(b[16:]),
		Cgroup:       le.Uint64(b[24:]),
		Pid:          le.Uint32(b[32:]),
		Tgid:         le.Uint32(b[36:]),
		UID:          le.Uint32(b[40:]),
		GID:          le.Uint32(b[44:]),
		SendTgid:     le.Uint32(b[48:]),
		SendUID:      le.Uint32(b[52:]),
		RequestBytes: le.Uint16(b[56:]),
	}
	port := binary.BigEndian.Uint16(b[58:]) // stored as the kernel keeps ports: network order
	family := b[60]
	e.Kind = Kind(b[61])
	e.Flags = b[62]
	e.Writes = b[63]
	if e.Kind < KindToken || e.Kind > KindV1 {
		return Event{}, fmt.Errorf("imdswatch: unknown event kind %d", b[61])
	}
	addr := netip.AddrFrom16([16]byte(b[64:80])).Unmap()
	switch family {
	case 2, 10: // AF_INET, AF_INET6
	default:
		return Event{}, fmt.Errorf("imdswatch: unknown address family %d", family)
	}
	e.Dest = netip.AddrPortFrom(addr, port)
	comm := b[80:96]
	n := 0
	for n < len(comm) && comm[n] != 0 {
		n++
	}
	e.Comm = string(comm[:n])
	return e, nil
}
