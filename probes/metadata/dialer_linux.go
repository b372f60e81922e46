package metadata

import (
	"context"
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
	c := &pollConn{fd: fd, raddr: net.TCPAddrFromAddrPort(ap), drops: d.MinTTL > 0 && !d.IgnoreDrops}
	if d.MinTTL > 0 {
		if v6 {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MINHOPCOUNT, d.MinTTL)
		} else {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MINTTL, d.MinTTL)
		}
		if err != nil {
			c.Close()
			return nil, opErr(os.NewSyscallError("set minimum TTL", err))
		}
	}
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		c.Close()
		return nil, opErr(os.NewSyscallError("connect", err))
	}
	var deadline time.Time
	if d.Timeout > 0 {
		deadline = time.Now().Add(d.Timeout)
	}
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline = dl
	}
	start := time.Now()
	for {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if n, err := unix.Poll(pfd, 0); err == nil && n > 0 {
			if serr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || serr != 0 {
				c.Close()
				if err == nil {
					err = unix.Errno(serr)
				}
				return nil, opErr(os.NewSyscallError("connect", err))
			}
			break
		}
		if c.dropped() {
			c.Close()
			return nil, opErr(ErrBelowMinTTL)
		}
		if err := ctx.Err(); err != nil {
			c.Close()
			return nil, opErr(err)
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			c.Close()
			return nil, opErr(os.ErrDeadlineExceeded)
		}
		time.Sleep(pollStep(time.Since(start)))
	}
	if lsa, err := unix.Getsockname(fd); err == nil {
		c.laddr = sockaddrTCP(lsa)
	}
	return c, nil
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

// pollConn is a connected TCP socket that waits by polling (see Dialer). It is safe for the
// concurrent use net/http makes of a connection (a read, a write and a Close at once).
type pollConn struct {
	mu    sync.RWMutex // held to use fd; Close takes it to close fd
	fd    int          // -1 once closed
	laddr net.Addr
	raddr net.Addr
	drops bool         // reads fail with ErrBelowMinTTL on a drop counted before any data
	got   atomic.Int64 // bytes read
	rdl   atomic.Int64 // read deadline, UnixNano; 0 = none
	wdl   atomic.Int64 // write deadline
}

// syscall runs f on the open socket.
func (c *pollConn) syscall(f func(fd int) (int, error)) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.fd < 0 {
		return 0, net.ErrClosed
	}
	return f(c.fd)
}

// dropped says whether the socket dropped a segment for its minimum TTL before receiving any
// data: SO_MEMINFO's drop count (the only drop a fresh socket sees that way).
func (c *pollConn) dropped() bool {
	if !c.drops || c.got.Load() > 0 {
		return false
	}
	n, _ := c.syscall(func(fd int) (int, error) {
		var mi [skMeminfoVars]uint32
		l := uint32(unsafe.Sizeof(mi))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mi[0])), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 || l <= skMeminfoDrops*4 {
			return 0, e
		}
		return int(mi[skMeminfoDrops]), nil
	})
	return n > 0
}

// wait sleeps before the next poll, or says why not to: the deadline passed, or (reading)
// the answer was dropped.
func (c *pollConn) wait(start time.Time, deadline *atomic.Int64, reading bool) error {
	if reading && c.dropped() {
		return ErrBelowMinTTL
	}
	if dl := deadline.Load(); dl != 0 && time.Now().UnixNano() >= dl {
		return os.ErrDeadlineExceeded
	}
	time.Sleep(pollStep(time.Since(start)))
	return nil
}

func (c *pollConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	start := time.Now()
	for {
		// syscall's Read and Write, not unix's: they tell the race detector that what one
		// goroutine writes to a socket happens before another reads it.
		n, err := c.syscall(func(fd int) (int, error) { return syscall.Read(fd, b) })
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			c.got.Add(int64(n))
			return n, nil
		case err == syscall.EINTR:
			continue
		case err != syscall.EAGAIN:
			return 0, c.opErr("read", err)
		}
		if err := c.wait(start, &c.rdl, true); err != nil {
			return 0, c.opErr("read", err)
		}
	}
}

func (c *pollConn) Write(b []byte) (int, error) {
	start := time.Now()
	done := 0
	for done < len(b) {
		n, err := c.syscall(func(fd int) (int, error) { return syscall.Write(fd, b[done:]) })
		if n > 0 {
			done += n
		}
		switch {
		case err == nil || err == syscall.EINTR:
			continue
		case err != syscall.EAGAIN:
			return done, c.opErr("write", err)
		}
		if err := c.wait(start, &c.wdl, false); err != nil {
			return done, c.opErr("write", err)
		}
	}
	return done, nil
}

func (c *pollConn) opErr(op string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.laddr, Addr: c.raddr, Err: err}
}

// Close closes the socket; a Read or Write polling it returns net.ErrClosed.
func (c *pollConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return net.ErrClosed
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
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

// TCPInfo returns the kernel's TCP_INFO of the connection.
func (c *pollConn) TCPInfo() (*unix.TCPInfo, error) {
	var info *unix.TCPInfo
	_, err := c.syscall(func(fd int) (int, error) {
		var err error
		info, err = unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		return 0, err
	})
	return info, err
}

// SO_MEMINFO's array (linux/sock_diag.h): SK_MEMINFO_DROPS is its last entry, since 4.7.
const (
	skMeminfoDrops = 8
	skMeminfoVars  = 9
)
