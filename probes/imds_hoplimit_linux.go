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
// Linux 5.16+), a failure need not cost a timeout: a drop seen while an attempt waits, with
// no answer within a short grace after it, is the attempt's answer being dropped. The
// counter is per network namespace, so a drop of another socket's (a BGP daemon using GTSM)
// could be mistaken for ours: the final failure is then confirmed by a second attempt that
// must see a drop of its own.
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
	v6 := ip.To4() == nil

	// Baseline: a plain token PUT must work, and its round trip sizes the attempt timeout.
	start := time.Now()
	if err := tokenPut(ctx, endpoint, 0, v6, timeout, nil); err != nil {
		return 0, fmt.Errorf("token request failed: %w", err)
	}
	rtt := time.Since(start)
	attempt := min(max(150*time.Millisecond, 20*rtt), timeout)
	var watch *dropWatch
	if drops != nil {
		if _, ok := drops(); ok {
			// The grace only guards against another socket's drop coinciding with our
			// attempt (rare: a GTSM-protected BGP session hit by a low-TTL packet), and a
			// baseline measured while a scan keeps both cores busy can be slow: bounded.
			watch = &dropWatch{count: drops, grace: min(max(10*time.Millisecond, 4*rtt), 25*time.Millisecond)}
		}
	}

	ok := func(n int, t time.Duration) (bool, error) {
		err := tokenPut(ctx, endpoint, n, v6, t, watch)
		switch {
		case err == nil:
			return true, nil
		case ctx.Err() != nil:
			return false, ctx.Err()
		case errors.Is(err, errDropped):
			return false, nil
		default:
			return false, err
		}
	}
	lo, hi := 1, 65 // lo answers; hi is the lowest known not to (hop limits are 1..64)
	for hi-lo > 1 {
		mid := lo + 1
		if lo > 1 {
			mid = (lo + hi) / 2
		}
		got, err := ok(mid, attempt)
		if err != nil {
			return 0, err
		}
		if !got && mid == lo+1 {
			// Before settling on lo, make sure lo+1 was really dropped, not just slow (with
			// the counter, this attempt must see a drop of its own to end early).
			if got, err = ok(mid, 3*attempt); err != nil {
				return 0, err
			}
		}
		if got {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// errDropped means no answer came back within the attempt's timeout: with IP_MINTTL set,
// that is the kernel discarding segments below the minimum TTL.
var errDropped = errors.New("no answer within the timeout")

// tokenPut sends one IMDSv2 token PUT on a fresh connection whose socket drops segments with
// TTL (hop limit) below minTTL (0 = no minimum). Only the status matters; the token is
// discarded unread beyond a few bytes.
func tokenPut(ctx context.Context, endpoint string, minTTL int, v6 bool, timeout time.Duration, watch *dropWatch) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if watch != nil && minTTL > 0 {
		stop := watch.start(cancel)
		defer stop()
	}
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
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext, DisableKeepAlives: true}}
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

// dropWatch ends an attempt early when the kernel's count of minimum-TTL drops goes up and
// no answer follows within grace.
type dropWatch struct {
	count func() (uint64, bool)
	grace time.Duration
}

// start polls the counter until stop is called; on a drop it waits out grace, then calls
// cancel (the attempt then ends as errDropped, as on its timeout).
func (w *dropWatch) start(cancel context.CancelFunc) (stop func()) {
	base, _ := w.count()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if n, ok := w.count(); ok && n > base {
				select {
				case <-done:
				case <-time.After(w.grace):
					cancel()
				}
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
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
