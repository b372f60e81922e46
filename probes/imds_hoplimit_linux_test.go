package probes

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

// readyMeter is a hopMeter whose baseline is done: attempts wait attempt, answers may
// trail a drop by grace.
func readyMeter(url string, drops func() (uint64, bool), attempt, grace time.Duration) *hopMeter {
	m := &hopMeter{endpoint: url, timeout: time.Hour, drops: drops, ready: make(chan struct{}),
		attempt: attempt, grace: grace}
	close(m.ready)
	return m
}

// TestRoundEndsOnDrops: a round whose answers are dropped ends on the counter, long before
// its timeout (far beyond any test's patience), for one attempt and for a pair.
func TestRoundEndsOnDrops(t *testing.T) {
	if _, ok := minTTLDrops(); !ok {
		t.Skip("this kernel does not count TCPMinTTLDrop (Linux 5.16+)")
	}
	s := fakeimds.New(t)
	s.HopLimit = 1
	for _, n := range []int{1, 2} {
		m := readyMeter(s.URL, minTTLDrops, 10*time.Minute, 10*time.Millisecond)
		done := make(chan error, 1)
		go func() {
			got, err := m.round(context.Background(), 2, n, 3)
			if err == nil && got {
				err = fmt.Errorf("answered")
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%d attempts: %v, want unanswered", n, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%d attempts: the drop counter did not end the round", n)
		}
	}
}

// TestRoundNeedsItsDrops: one drop counted (another socket's, say) does not end a round of
// two attempts: it waits for a second drop, here never counted, until its deadline.
func TestRoundNeedsItsDrops(t *testing.T) {
	s := fakeimds.New(t)
	s.HopLimit = 1
	var reads atomic.Int64
	oneForeign := func() (uint64, bool) { // 100, then 101 for ever
		if reads.Add(1) == 1 {
			return 100, true
		}
		return 101, true
	}
	const attempt = 200 * time.Millisecond
	m := readyMeter(s.URL, oneForeign, attempt, 10*time.Millisecond)
	start := time.Now()
	got, err := m.round(context.Background(), 2, 2, 1)
	if err != nil || got {
		t.Fatalf("got %v %v, want unanswered", got, err)
	}
	if el := time.Since(start); el < attempt {
		t.Errorf("round ended after %s on one drop; want its deadline (%s)", el, attempt)
	}
	if reads.Load() < 3 {
		t.Errorf("counter read %d times; want polling", reads.Load())
	}
}

// TestRoundAnswered: answers that come after drops were counted (another socket's), but
// within the grace, decide the round: it is answered, not taken for dropped.
func TestRoundAnswered(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond) // after the first poll of the counter (2 ms)
		io.WriteString(w, "token")
	}))
	defer slow.Close()
	var n atomic.Uint64
	noisy := func() (uint64, bool) { return n.Add(5), true } // drops on every read
	m := readyMeter(slow.URL, noisy, time.Minute, 500*time.Millisecond)
	if got, err := m.round(context.Background(), 2, 2, 3); err != nil || !got {
		t.Errorf("got %v %v, want answered", got, err)
	}
}

// TestHopLimitBaselineFails: a PUT refused outright is an error naming the token request,
// whether or not the first attempts were already out.
func TestHopLimitBaselineFails(t *testing.T) {
	s := fakeimds.New(t)
	s.Off = true
	for _, drops := range []func() (uint64, bool){nil, minTTLDrops} {
		_, err := measureHopLimitWith(context.Background(), s.URL, 5*time.Second, drops)
		if err == nil || !strings.Contains(err.Error(), "token request failed") {
			t.Errorf("got %v, want the token request's failure", err)
		}
	}
}

// TestBaselineKernelRTT: the baseline PUT reports the kernel's RTT of its connection, which a
// busy scan's scheduling waits do not inflate (the grace after a drop is sized from it).
func TestBaselineKernelRTT(t *testing.T) {
	s := fakeimds.New(t)
	rtt, err := tokenPutRTT(context.Background(), s.URL, false, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rtt <= 0 || rtt > time.Second {
		t.Errorf("kernel RTT %s on loopback; want a positive sub-second value", rtt)
	}
}
