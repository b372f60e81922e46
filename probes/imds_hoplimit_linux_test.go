package probes

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
)

func TestParseMinTTLDrops(t *testing.T) {
	good := "TcpExt: SyncookiesSent PFMemallocDrop TCPMinTTLDrop TCPDeferAcceptDrop\nTcpExt: 1 2 345 6\nIpExt: InNoRoutes\nIpExt: 0\n"
	if n, ok := parseMinTTLDrops([]byte(good)); !ok || n != 345 {
		t.Errorf("got %d %v, want 345 true", n, ok)
	}
	for _, bad := range []string{
		"TcpExt: SyncookiesSent PFMemallocDrop\nTcpExt: 1 2\n", // kernel before 5.16
		"TcpExt: TCPMinTTLDrop\n",                              // no values
		"TcpExt: A TCPMinTTLDrop\nTcpExt: 1\n",                 // short line
		"TcpExt: TCPMinTTLDrop\nTcpExt: x\n",
		"",
	} {
		if _, ok := parseMinTTLDrops([]byte(bad)); ok {
			t.Errorf("%q: counter reported", bad)
		}
	}
}

// TestHopLimitDropCounter: with the kernel's drop counter the search is decided by drops it
// sees, not by timeouts, and gives the same answers; without it (an older kernel), and with
// a counter that other sockets' drops keep raising, the answers stay right.
func TestHopLimitDropCounter(t *testing.T) {
	if _, ok := minTTLDrops(); !ok {
		t.Skip("this kernel does not count TCPMinTTLDrop (Linux 5.16+)")
	}
	var saw atomic.Int64
	real := func() (uint64, bool) {
		n, ok := minTTLDrops()
		saw.Add(1)
		return n, ok
	}
	var busy atomic.Uint64 // a BGP daemon's drops: up on every read
	noisy := func() (uint64, bool) {
		n, ok := minTTLDrops()
		return n + busy.Add(1), ok
	}
	for _, tc := range []struct {
		name  string
		drops func() (uint64, bool)
	}{{"kernel counter", real}, {"no counter", nil}, {"other sockets dropping", noisy}} {
		for _, n := range []int{1, 2, 5} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, n), func(t *testing.T) {
				s := fakeimds.New(t)
				s.HopLimit = n
				got, err := measureHopLimitWith(context.Background(), s.URL, 5*time.Second, tc.drops)
				if err != nil {
					t.Fatal(err)
				}
				if got != n {
					t.Errorf("measured %d, want %d", got, n)
				}
			})
		}
	}
	if saw.Load() == 0 {
		t.Error("the kernel counter was never read")
	}
}

// TestDropWatchEndsAttempt: an attempt whose answer is dropped ends on the counter, long
// before its timeout (the timeout here is far beyond any test's patience).
func TestDropWatchEndsAttempt(t *testing.T) {
	if _, ok := minTTLDrops(); !ok {
		t.Skip("this kernel does not count TCPMinTTLDrop (Linux 5.16+)")
	}
	s := fakeimds.New(t)
	s.HopLimit = 1
	w := &dropWatch{count: minTTLDrops, grace: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- tokenPut(context.Background(), s.URL, 2, false, 10*time.Minute, w) }()
	select {
	case err := <-done:
		if err != errDropped {
			t.Errorf("got %v, want errDropped", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the drop counter did not end the attempt")
	}
}
