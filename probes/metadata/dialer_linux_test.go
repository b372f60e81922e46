package metadata

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
)

// TestDialerRoundTrips: net/http over the polled connections, many at once.
func TestDialerRoundTrips(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 100<<10)+r.URL.Path)
	}))
	defer s.Close()
	c := &http.Client{Transport: &http.Transport{DialContext: (&Dialer{}).DialContext}}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			path := "/" + strings.Repeat("p", i)
			resp, err := c.Get(s.URL + path)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || len(b) != 100<<10+len(path) || !strings.HasSuffix(string(b), path) {
				t.Errorf("%s: %d bytes, %v", path, len(b), err)
			}
		})
	}
	wg.Wait()
}

// TestDialerBelowMinTTL: an answer below the minimum TTL fails the read at once with
// ErrBelowMinTTL, its deadline far off; ignoring drops, the read waits for its deadline.
func TestDialerBelowMinTTL(t *testing.T) {
	s := fakeimds.New(t)
	s.HopLimit = 1
	addr := strings.TrimPrefix(s.URL, "http://")
	put := "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n"
	for _, ignore := range []bool{false, true} {
		c, err := (&Dialer{MinTTL: 2, IgnoreDrops: ignore}).DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		wait := 30 * time.Second // far off: the drop ends the read long before
		if ignore {
			wait = 200 * time.Millisecond
		}
		c.SetDeadline(time.Now().Add(wait))
		if _, err := io.WriteString(c, put); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = c.Read(make([]byte, 64))
		el := time.Since(start)
		c.Close()
		switch {
		case !ignore && (!errors.Is(err, ErrBelowMinTTL) || el > wait/2):
			t.Errorf("read: %v after %s, want ErrBelowMinTTL at once", err, el)
		case ignore && !errors.Is(err, os.ErrDeadlineExceeded):
			t.Errorf("ignoring drops, read: %v, want its deadline", err)
		case ignore && el < wait:
			t.Errorf("ignoring drops, the read ended after %s, before its deadline", el)
		}
		var ne net.Error
		if ignore && (!errors.As(err, &ne) || !ne.Timeout()) {
			t.Errorf("%v is no timeout", err)
		}
	}
	// At the minimum or above, the answer is read.
	c, err := (&Dialer{MinTTL: 1}).DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, put)
	c.SetDeadline(time.Now().Add(time.Minute))
	b := make([]byte, 12)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "HTTP/1.1 200" {
		t.Errorf("%q %v", b, err)
	}
}

// TestDialerCloseEndsRead: a Close from another goroutine ends a read that waits for an
// answer that never comes; the socket is not used after its close.
func TestDialerCloseEndsRead(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the end
		}
	}()
	c, err := (&Dialer{}).DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the read")
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
}

// TestDialerRefused: a closed port fails the dial with the kernel's reason.
func TestDialerRefused(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, err := (&Dialer{Timeout: 5 * time.Second}).DialContext(context.Background(), "tcp", addr)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("got %v, want connection refused", err)
	}
}

// TestDialerEmptyRead: a read into nothing reads nothing, and is no error.
func TestDialerEmptyRead(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := (&Dialer{}).DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Errorf("read into nothing: %d, %v", n, err)
	}
}
