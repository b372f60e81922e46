package metadata

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DialContext connects to addr ("ip:port"; a host name is dialled by a net.Dialer) over TCP.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || (network != "tcp" && network != "tcp4" && network != "tcp6") {
		if d.MinTTL > 0 {
			return nil, fmt.Errorf("dial %s: a minimum TTL needs an IP address", addr)
		}
		nd := net.Dialer{Timeout: d.Timeout}
		return nd.DialContext(ctx, network, addr)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	v6 := ap.Addr().Is6()
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(ap), Err: err}
	}
	var family int
	var sa unix.Sockaddr
	if v6 {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16(), ZoneId: zoneID(ap.Addr().Zone())}
	} else {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, opErr(os.NewSyscallError("socket", err))
	}
	if d.MinTTL > 0 {
		if v6 {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MINHOPCOUNT, d.MinTTL)
		} else {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MINTTL, d.MinTTL)
		}
		if err != nil {
			unix.Close(fd)
			return nil, opErr(os.NewSyscallError("set minimum TTL", err))
		}
	}
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		unix.Close(fd)
		return nil, opErr(os.NewSyscallError("connect", err))
	}
	// A non-blocking descriptor makes a File that waits on Go's poller (and its deadlines).
	f := os.NewFile(uintptr(fd), "tcp "+addr)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, opErr(err)
	}
	c := &pollConn{f: f, rc: rc, raddr: net.TCPAddrFromAddrPort(ap), drops: d.MinTTL > 0 && !d.IgnoreDrops}
	var deadline time.Time
	if d.Timeout > 0 {
		deadline = time.Now().Add(d.Timeout)
	}
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline = dl
	}
	start := time.Now()
	for {
		f.SetWriteDeadline(nextPoll(start, deadline))
		var done bool
		var cerr error
		err := rc.Write(func(fd uintptr) bool {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			if n, err := unix.Poll(pfd, 0); err != nil || n == 0 {
				return false // connecting still: wait for the socket to turn writable
			}
			done = true
			if serr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR); err != nil {
				cerr = err
			} else if serr != 0 {
				cerr = unix.Errno(serr)
			}
			return true
		})
		switch {
		case done && cerr != nil:
			f.Close()
			return nil, opErr(os.NewSyscallError("connect", cerr))
		case done:
			f.SetWriteDeadline(time.Time{})
			if lsa, err := unix.Getsockname(fd); err == nil {
				c.laddr = sockaddrTCP(lsa)
			}
			return c, nil
		case !errors.Is(err, os.ErrDeadlineExceeded):
			f.Close()
			return nil, opErr(err)
		case c.dropped():
			f.Close()
			return nil, opErr(ErrBelowMinTTL)
		case ctx.Err() != nil:
			f.Close()
			return nil, opErr(ctx.Err())
		case !deadline.IsZero() && !time.Now().Before(deadline):
			f.Close()
			return nil, opErr(os.ErrDeadlineExceeded)
		}
	}
}

// nextPoll is the deadline of one wait on Go's poller, started at start and bounded by
// deadline (zero: none): when it passes, the socket is looked at again (see Dialer).
func nextPoll(start, deadline time.Time) time.Time {
	t := time.Now().Add(pollStep(time.Since(start)))
	if !deadline.IsZero() && deadline.Before(t) {
		return deadline
	}
	return t
}

func zoneID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

func sockaddrTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}

// pollConn is a connected TCP socket, a File on Go's poller whose waits end on a short timer
// as well (see Dialer). Like a net.Conn, it allows a read, a write and a Close at once.
type pollConn struct {
	f     *os.File
	rc    syscall.RawConn
	laddr net.Addr
	raddr net.Addr
	drops bool         // reads fail with ErrBelowMinTTL on a drop counted before any data
	got   atomic.Int64 // bytes read
	rdl   atomic.Int64 // the caller's read deadline, UnixNano; 0 = none
	wdl   atomic.Int64 // and write deadline
}

// dropped says whether the socket dropped a segment for its minimum TTL before receiving any
// data: SO_MEMINFO's drop count (the only drop a fresh socket sees that way).
func (c *pollConn) dropped() bool {
	if !c.drops || c.got.Load() > 0 {
		return false
	}
	var n uint32
	c.rc.Control(func(fd uintptr) { n, _ = socketDrops(fd) })
	return n > 0
}

// DropsCounted says whether this kernel counts a socket's drops (SO_MEMINFO's last entry,
// Linux 4.7+), so that a Dialer with MinTTL knows an answer dropped for its TTL when it
// comes: then an attempt that gets neither answer nor drop got no answer at all.
var DropsCounted = sync.OnceValue(func() bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	_, ok := socketDrops(uintptr(fd))
	return ok
})

// socketDrops reads the socket's drop count from SO_MEMINFO; ok is false where the kernel
// does not report one.
func socketDrops(fd uintptr) (n uint32, ok bool) {
	var mi [skMeminfoVars]uint32
	l := uint32(unsafe.Sizeof(mi))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mi[0])), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 || l <= skMeminfoDrops*4 {
		return 0, false
	}
	return mi[skMeminfoDrops], true
}

// SO_MEMINFO's array (linux/sock_diag.h): SK_MEMINFO_DROPS is its last entry, since 4.7.
const (
	skMeminfoDrops = 8
	skMeminfoVars  = 9
)

func deadlineOf(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (c *pollConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	start := time.Now()
	for {
		user := deadlineOf(c.rdl.Load())
		c.f.SetReadDeadline(nextPoll(start, user))
		n, err := c.f.Read(b)
		switch {
		case n > 0:
			c.got.Add(int64(n))
			return n, nil
		case err == io.EOF:
			return 0, io.EOF
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return 0, c.opErr("read", err)
		case !user.IsZero() && !time.Now().Before(user):
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		case c.dropped():
			return 0, c.opErr("read", ErrBelowMinTTL)
		}
	}
}

func (c *pollConn) Write(b []byte) (int, error) {
	start := time.Now()
	done := 0
	for {
		user := deadlineOf(c.wdl.Load())
		c.f.SetWriteDeadline(nextPoll(start, user))
		n, err := c.f.Write(b[done:])
		done += n
		switch {
		case err == nil:
			return done, nil
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return done, c.opErr("write", err)
		case !user.IsZero() && !time.Now().Before(user):
			return done, c.opErr("write", os.ErrDeadlineExceeded)
		}
	}
}

func (c *pollConn) opErr(op string, err error) error {
	if errors.Is(err, os.ErrClosed) {
		err = net.ErrClosed
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.laddr, Addr: c.raddr, Err: err}
}

// Close closes the socket; a Read or Write waiting on it returns net.ErrClosed.
func (c *pollConn) Close() error {
	if err := c.f.Close(); err != nil {
		return net.ErrClosed
	}
	return nil
}

func (c *pollConn) LocalAddr() net.Addr  { return c.laddr }
func (c *pollConn) RemoteAddr() net.Addr { return c.raddr }

func (c *pollConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *pollConn) SetReadDeadline(t time.Time) error {
	c.rdl.Store(unixNano(t))
	return nil
}

func (c *pollConn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(unixNano(t))
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
