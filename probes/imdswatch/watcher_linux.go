//go:build linux && (amd64 || arm64)

package imdswatch

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Watcher is the loaded kernel side. Its programs are attached through bpf_link file
// descriptors and the sk_msg program through a map this process alone holds: nothing is
// pinned, so when the process ends (Close, or a crash) the kernel detaches everything.
type Watcher struct {
	objs   imdswatchObjects
	links  []*link.RawLink
	rd     *ringbuf.Reader
	cgroup string
}

// Load loads the BPF programs, fills the destination map and attaches the programs to the
// cgroup v2 root. Any failure is ErrNotAvailable with the reason, and leaves nothing loaded.
func Load(o Options) (_ *Watcher, err error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrNotAvailable, fmt.Sprintf(format, a...))
	}
	dests := o.Dests
	if dests == nil {
		dests = DefaultDests
	}
	if len(dests) > 16 {
		return nil, fail("%d destinations, at most 16", len(dests))
	}
	cg := o.Cgroup
	if cg == "" {
		if cg, err = cgroup2Root("/proc/self/mountinfo"); err != nil {
			// A cgroup v1-only host (Amazon Linux 2's default): the v2 hierarchy exists all
			// the same, every process in its root. Mount it privately just long enough to
			// attach; the programs stay attached to the root after the unmount.
			dir, unmount, merr := mountCgroup2()
			if merr != nil {
				return nil, fail("%v; mounting a private cgroup2: %v", err, merr)
			}
			defer unmount()
			cg = dir
		}
	}
	// Kernels before 5.11 count BPF memory against RLIMIT_MEMLOCK (AL2's 5.10): raise it
	// where allowed; the unit's LimitMEMLOCK covers the agent under systemd.
	_ = rlimit.RemoveMemlock()
	spec, err := loadImdswatch()
	if err != nil {
		return nil, fail("BPF object: %v", err)
	}
	w := &Watcher{cgroup: cg}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	if err := spec.LoadAndAssign(&w.objs, nil); err != nil {
		return nil, fail("load BPF programs (needs Linux 5.8+ and CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, which root has): %v", loadErr(err))
	}
	if err := w.objs.Parsers.Put(uint32(0), w.objs.ImdsParse); err != nil {
		return nil, fail("parser tail call: %v", err)
	}
	for _, d := range dests {
		if err := w.objs.Dests.Put(destKey(d), uint8(1)); err != nil {
			return nil, fail("destination %s: %v", d, err)
		}
	}
	dir, err := os.Open(cg)
	if err != nil {
		return nil, fail("cgroup v2 root: %v", err)
	}
	defer dir.Close()
	// The sk_msg program goes on the socket map first, then the socket hooks, so that no IMDS
	// connection is put in the map before its writes can be read.
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target: w.objs.ImdsSocks.FD(), Program: w.objs.ImdsMsg, Attach: ebpf.AttachSkMsgVerdict,
	}); err != nil {
		return nil, fail("attach sk_msg: %v", err)
	}
	for _, a := range []struct {
		prog   *ebpf.Program
		attach ebpf.AttachType
	}{
		{w.objs.ImdsConnect4, ebpf.AttachCGroupInet4Connect},
		{w.objs.ImdsConnect6, ebpf.AttachCGroupInet6Connect},
		{w.objs.ImdsSockops, ebpf.AttachCGroupSockOps},
	} {
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: int(dir.Fd()), Program: a.prog, Attach: a.attach})
		if err != nil {
			return nil, fail("attach %s to %s: %v", a.attach, cg, err)
		}
		w.links = append(w.links, l)
	}
	if w.rd, err = ringbuf.NewReader(w.objs.Events); err != nil {
		w.rd = nil
		return nil, fail("ring buffer: %v", err)
	}
	return w, nil
}

// loadErr keeps the verifier's last lines: the whole log can be megabytes.
func loadErr(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("%w", ve)
	}
	return err
}

// Cgroup is the cgroup v2 directory the programs are attached to.
func (w *Watcher) Cgroup() string { return w.cgroup }

// Read blocks until the kernel reports a request (epoll on the ring buffer: no timer, no
// wake-up while nobody calls IMDS) and returns it; after Close it returns ErrClosed.
func (w *Watcher) Read() (Event, error) {
	for {
		rec, err := w.rd.Read()
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, ringbuf.ErrClosed) {
				return Event{}, ErrClosed
			}
			return Event{}, err
		}
		ev, err := DecodeEvent(rec.RawSample)
		if err != nil {
			continue // cannot happen with our own object; never stop reading for it
		}
		return ev, nil
	}
}

// ErrClosed is what Read returns once the watcher is closed.
var ErrClosed = errors.New("imdswatch: watcher closed")

// Stats reads the kernel side's counters.
func (w *Watcher) Stats() (Stats, error) {
	var s Stats
	for i, p := range []*uint64{&s.Events, &s.Dropped, &s.Sockets, &s.SocketsErr} {
		if err := w.objs.Stats.Lookup(uint32(i), p); err != nil {
			return s, fmt.Errorf("imdswatch stats: %w", err)
		}
	}
	return s, nil
}

// Close detaches and unloads everything; Read returns ErrClosed.
func (w *Watcher) Close() error {
	var errs []error
	if w.rd != nil {
		errs = append(errs, w.rd.Close())
	}
	for _, l := range w.links {
		errs = append(errs, l.Close())
	}
	w.links = nil
	errs = append(errs, w.objs.Close())
	return errors.Join(errs...)
}

// destKey is struct dest_key: the address as IPv6 (IPv4 mapped), the port in network order.
func destKey(d netip.AddrPort) imdswatchDestKey {
	var k imdswatchDestKey
	k.Addr = d.Addr().As16()
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], d.Port())
	k.Port = binary.NativeEndian.Uint16(p[:])
	return k
}

// cgroup2Root finds the host's cgroup v2 mount: /sys/fs/cgroup on unified hosts,
// /sys/fs/cgroup/unified on hybrid ones.
func cgroup2Root(mountinfo string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", fmt.Errorf("find cgroup2: %w", err)
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 1 || qf[0] != "cgroup2" || pf[3] != "/" {
			continue // only a mount of the hierarchy's root sees every process
		}
		found = append(found, unescapeMount(pf[4]))
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("find cgroup2: %w", err)
	}
	for _, p := range found {
		if p == "/sys/fs/cgroup" || p == "/sys/fs/cgroup/unified" {
			return p, nil
		}
	}
	if len(found) > 0 {
		return found[0], nil
	}
	return "", errors.New("no cgroup2 mount (a cgroup v1-only host): the hooks need cgroup v2")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountCgroup2 mounts the cgroup v2 hierarchy on a fresh directory (CAP_SYS_ADMIN); unmount
// detaches it and removes the directory.
func mountCgroup2() (dir string, unmount func(), err error) {
	dir, err = os.MkdirTemp("", "ec2sec-cgroup2-")
	if err != nil {
		return "", nil, err
	}
	if err := unix.Mount("cgroup2", dir, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		os.Remove(dir)
		return "", nil, err
	}
	return dir, func() {
		unix.Unmount(dir, unix.MNT_DETACH)
		os.Remove(dir)
	}, nil
}

// ownNetnsCookie is the cookie the kernel gives this process's network namespace, as
// bpf_get_netns_cookie reports it for a caller's socket; 0 before Linux 5.14 (no
// SO_NETNS_COOKIE).
func ownNetnsCookie() uint64 {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0
	}
	return c
}
