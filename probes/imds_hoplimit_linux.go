package probes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/ec2sec/ec2sec/internal/httplimit"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// measureHopLimit finds the IP TTL (IPv6 hop limit) that IMDS puts on its token response,
// which is the instance's HttpPutResponseHopLimit. Linux cannot report a TCP segment's TTL,
// but a socket with IP_MINTTL=n drops every segment whose TTL is below n: a token PUT that
// still gets its answer with IP_MINTTL=n proves the limit is at least n, and one whose socket
// counts such a drop before any answer (SO_MEMINFO, Linux 4.7+; see metadata.Dialer) proves
// it is below n, as soon as the answer arrives. The search checks 2 first: on a compliant
// instance the whole measurement is one round trip.
//
// A baseline PUT without a minimum goes out alongside the first attempt: IMDS must answer it
// (its failure is the measurement's). Where the kernel counts a socket's drops, an attempt
// neither answered nor dropped within the request's timeout is an error, never taken for a
// drop: a host busy enough to answer late gets NOT_AVAILABLE, not a wrong hop limit. Where it
// does not, a failure is a timeout sized from the baseline's round trip, and the final one is
// confirmed with a longer timeout before it is believed.
func measureHopLimit(ctx context.Context, endpoint string, timeout time.Duration) (int, error) {
	return measureHopLimitWith(ctx, endpoint, timeout, true)
}

// measureHopLimitWith is measureHopLimit; without drops it waits for answers only, as on a
// kernel that does not count a socket's drops.
func measureHopLimitWith(ctx context.Context, endpoint string, timeout time.Duration, drops bool) (int, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() == "" {
		return 0, fmt.Errorf("bad IMDS endpoint %q", endpoint)
	}
	if net.ParseIP(u.Hostname()) == nil {
		return 0, fmt.Errorf("IMDS endpoint %q is not an IP address; the hop limit is measured on the wire", u.Hostname())
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	m := &hopMeter{endpoint: endpoint, addr: net.JoinHostPort(u.Hostname(), port), timeout: timeout,
		ignoreDrops: !drops, counted: drops && metadata.DropsCounted(), ready: make(chan struct{})}
	go func() {
		defer close(m.ready)
		start := time.Now()
		err := m.put(ctx, 0)
		if err == nil {
			m.attempt = min(max(150*time.Millisecond, 20*time.Since(start)), timeout)
		} else if ctx.Err() == nil {
			err = fmt.Errorf("token request failed: %w", err)
		}
		m.baseErr = err
	}()

	lo, hi := 1, 65 // lo answers; hi is the lowest known not to (hop limits are 1..64)
	for hi-lo > 1 {
		mid := lo + 1
		if lo > 1 {
			mid = (lo + hi) / 2
		}
		got, certain, err := m.try(ctx, mid, 1)
		if err == nil && !got && !certain && mid == lo+1 {
			// lo+1 failing ends the search: a timeout is confirmed with a longer one, so a
			// slow answer is not taken for a dropped one.
			got, _, err = m.try(ctx, mid, 3)
		}
		if err != nil {
			if berr := m.baseline(); berr != nil {
				return 0, berr
			}
			return 0, err
		}
		if got {
			lo = mid
		} else {
			hi = mid
		}
	}
	if err := m.baseline(); err != nil {
		return 0, err
	}
	return lo, nil
}

// hopMeter sends the token PUTs of one measurement.
type hopMeter struct {
	endpoint    string
	addr        string        // ip:port
	timeout     time.Duration // bounds every request
	ignoreDrops bool          // wait for answers only
	// counted: the kernel counts each socket's drops, so an attempt's answer dropped for its
	// TTL is known when it comes, and one that comes neither answered nor dropped (the
	// request's whole timeout) is no answer at all, not a drop.
	counted bool
	ready   chan struct{} // closed when the baseline PUT is done; then these are set:
	baseErr error         // its outcome
	attempt time.Duration // how long an attempt waits for its answer
}

// baseline waits for the baseline PUT and returns its error.
func (m *hopMeter) baseline() error {
	<-m.ready
	return m.baseErr
}

// try sends one token PUT on a socket that drops segments with a TTL below minTTL. got: it
// was answered. certain: it was not, because its socket dropped the answer. Where drops are
// counted, an attempt waits for one or the other for the request's whole timeout (a busy host
// may answer late), and no answer is an error. Otherwise its time runs out after wait times
// the attempt timeout, which comes from the baseline PUT, still on its way perhaps.
func (m *hopMeter) try(ctx context.Context, minTTL, wait int) (got, certain bool, err error) {
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-stop:
			return
		case <-m.ready:
		}
		if m.baseErr != nil {
			cancel()
			return
		}
		if m.counted {
			return
		}
		t := time.NewTimer(max(time.Duration(wait)*m.attempt-time.Since(start), 0))
		defer t.Stop()
		select {
		case <-stop:
		case <-t.C:
			cancel()
		}
	}()
	err = m.put(tctx, minTTL)
	switch {
	case err == nil:
		return true, false, nil
	case errors.Is(err, metadata.ErrBelowMinTTL):
		return false, true, nil
	case ctx.Err() != nil:
		return false, false, ctx.Err()
	case errors.Is(err, errDropped):
		select {
		case <-m.ready:
			if m.baseErr != nil {
				return false, false, m.baseErr
			}
		default:
		}
		if m.counted {
			return false, false, fmt.Errorf("a token PUT with minimum TTL %d got no answer within %s, and none was dropped", minTTL, m.timeout)
		}
		return false, false, nil
	}
	return false, false, err
}

// errDropped means no answer came back within the attempt's time.
var errDropped = errors.New("no answer within the timeout")

// put sends one IMDSv2 token PUT on a fresh connection whose socket drops segments with TTL
// (hop limit) below minTTL (0 = no minimum). Only the status matters: the token is left
// unread. No answer in time (or the context's end) is errDropped; an answer dropped for its
// TTL is metadata.ErrBelowMinTTL.
func (m *hopMeter) put(ctx context.Context, minTTL int) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	d := metadata.Dialer{MinTTL: minTTL, IgnoreDrops: m.ignoreDrops}
	out := func(err error) error {
		if errors.Is(err, metadata.ErrBelowMinTTL) {
			return metadata.ErrBelowMinTTL
		}
		if ctx.Err() != nil || isTimeout(err) || errors.Is(err, net.ErrClosed) {
			return errDropped
		}
		return err
	}
	conn, err := d.DialContext(ctx, "tcp", m.addr)
	if err != nil {
		return out(err)
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })() // the context's end ends a read
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.endpoint+"/latest/api/token", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	req.Close = true
	if err := req.Write(conn); err != nil {
		return out(err)
	}
	// Bounded: a hostile IMDS's endless header costs at most httplimit.IMDSHeaders.
	resp, err := http.ReadResponse(bufio.NewReaderSize(io.LimitReader(conn, httplimit.IMDSHeaders), 512), req)
	if err != nil {
		return out(err)
	}
	// The body is left unread (closing it would read it all): the connection's close ends it.
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token PUT answered HTTP %d", resp.StatusCode)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
