package probes

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// TestHopLimitMeasured: with the socket's drop count the search is decided by drops as the
// answers arrive, not by timeouts; without it (an older kernel) by timeouts. Both give the
// right answers.
func TestHopLimitMeasured(t *testing.T) {
	for _, drops := range []bool{true, false} {
		for _, n := range []int{1, 2, 5} {
			t.Run(fmt.Sprintf("drops=%v/%d", drops, n), func(t *testing.T) {
				s := fakeimds.New(t)
				s.HopLimit = n
				got, err := measureHopLimitWith(context.Background(), s.URL, 5*time.Second, drops)
				if err != nil {
					t.Fatal(err)
				}
				if got != n {
					t.Errorf("measured %d, want %d", got, n)
				}
			})
		}
	}
}

// readyMeter is a hopMeter for url whose baseline is done: attempts wait attempt (where drops
// are not counted) or an hour.
func readyMeter(url string, attempt time.Duration, ignoreDrops bool) *hopMeter {
	m := &hopMeter{endpoint: url, addr: strings.TrimPrefix(url, "http://"), timeout: time.Hour,
		ignoreDrops: ignoreDrops, counted: !ignoreDrops && metadata.DropsCounted(), ready: make(chan struct{}), attempt: attempt}
	close(m.ready)
	return m
}

// TestTryLateAnswer: where drops are counted, an answer later than the attempt timeout (a
// busy host) is an answer, and an IMDS that never answers is an error; neither is taken for a
// dropped answer, which would measure a hop limit of 1 and pass. Without the count, both are
// timeouts, as before.
func TestTryLateAnswer(t *testing.T) {
	if !metadata.DropsCounted() {
		t.Skip("this kernel does not count a socket's drops (Linux 4.7+)")
	}
	late := delayedIMDS(t, 300*time.Millisecond)
	const attempt = 50 * time.Millisecond
	if got, certain, err := readyMeter(late.URL, attempt, false).try(context.Background(), 2, 1); err != nil || !got || certain {
		t.Errorf("late answer, drops counted: got %v certain %v err %v, want answered", got, certain, err)
	}
	if got, certain, err := readyMeter(late.URL, attempt, true).try(context.Background(), 2, 1); err != nil || got || certain {
		t.Errorf("late answer, drops not counted: got %v certain %v err %v, want an uncertain timeout", got, certain, err)
	}
	s := fakeimds.New(t)
	s.Set(func(s *fakeimds.Server) { s.Fault = fakeimds.Hang })
	m := readyMeter(s.URL, attempt, false)
	m.timeout = time.Second
	if got, certain, err := m.try(context.Background(), 2, 1); err == nil || got || certain {
		t.Errorf("no answer, drops counted: got %v certain %v err %v, want an error", got, certain, err)
	}
}

// TestTryEndsOnDrop: an attempt whose answer is dropped for its TTL ends with the drop, long
// before its timeout (far beyond any test's patience), and says it is certain; without the
// drop count it waits for its timeout.
func TestTryEndsOnDrop(t *testing.T) {
	s := fakeimds.New(t)
	s.HopLimit = 1
	done := make(chan error, 1)
	go func() {
		got, certain, err := readyMeter(s.URL, 10*time.Minute, false).try(context.Background(), 2, 1)
		if err == nil && (got || !certain) {
			err = fmt.Errorf("answered %v, certain %v", got, certain)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%v, want dropped for certain", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the socket's drop did not end the attempt")
	}

	const attempt = 200 * time.Millisecond
	start := time.Now()
	got, certain, err := readyMeter(s.URL, attempt, true).try(context.Background(), 2, 1)
	if err != nil || got || certain {
		t.Errorf("ignoring drops: got %v certain %v err %v, want an uncertain timeout", got, certain, err)
	}
	if el := time.Since(start); el < attempt {
		t.Errorf("ignoring drops, the attempt ended after %s, before its timeout (%s)", el, attempt)
	}
}

// TestTrySlowAnswer: an answer that takes its time, while other sockets keep dropping
// segments for their minimum TTL, is an answer: drops are counted per socket.
func TestTrySlowAnswer(t *testing.T) {
	slow := delayedIMDS(t, 30*time.Millisecond)
	low := fakeimds.New(t)
	low.HopLimit = 1
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { // another socket's answers dropped, over and over
		for ctx.Err() == nil {
			readyMeter(low.URL, time.Second, false).put(ctx, 2)
		}
	})
	got, certain, err := readyMeter(slow.URL, time.Minute, false).try(context.Background(), 2, 1)
	cancel()
	wg.Wait()
	if err != nil || !got || certain {
		t.Errorf("got %v certain %v err %v, want answered", got, certain, err)
	}
}

// TestHopLimitBaselineFails: a PUT refused outright is an error naming the token request,
// whether or not the first attempt was already out.
func TestHopLimitBaselineFails(t *testing.T) {
	s := fakeimds.New(t)
	s.Off = true
	for _, drops := range []bool{true, false} {
		_, err := measureHopLimitWith(context.Background(), s.URL, 5*time.Second, drops)
		if err == nil || !strings.Contains(err.Error(), "token request failed") {
			t.Errorf("drops=%v: got %v, want the token request's failure", drops, err)
		}
	}
}

// delayedIMDS answers every request after d, at the kernel's default TTL (64): an answer that
// takes its time, never one dropped for its hop limit.
func delayedIMDS(t *testing.T, d time.Duration) *fakeimds.Server {
	s := fakeimds.New(t)
	s.Set(func(s *fakeimds.Server) {
		s.HopLimit = 0
		s.Before = func(*http.Request) { time.Sleep(d) }
	})
	return s
}
