package forwarder

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	"github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	"github.com/ec2sec/ec2sec/agent/sink"
)

// Clock is the forwarder's time: real in Lambda, simulated in the fleet simulation.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// Limiter is a token bucket that hands out call slots: Wait reserves the next one and sleeps
// until it. Reservations make the slots conform to the rate and burst however many callers
// wait at once, so calls made at their slots never exceed Security Hub's limit.
type Limiter struct {
	mu     sync.Mutex
	rate   float64 // per second
	burst  float64
	tokens float64
	last   time.Time
	clock  Clock
}

// NewLimiter returns a full bucket.
func NewLimiter(rate float64, burst int, c Clock) *Limiter {
	return &Limiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: c.Now(), clock: c}
}

// Wait blocks until the caller's slot.
func (l *Limiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	now := l.clock.Now()
	if d := now.Sub(l.last); d > 0 {
		l.tokens = min(l.burst, l.tokens+d.Seconds()*l.rate)
		l.last = now
	}
	l.tokens--
	var wait time.Duration
	if l.tokens < 0 {
		wait = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	return l.clock.Sleep(ctx, wait)
}

// Importer imports findings into Security Hub within its rate limit: batches of up to 100
// (and MaxCallBytes), at most Concurrency calls in flight, each at a Limiter slot; findings
// that fail with a retryable error, alone (FailedFindings) or with their call (throttling,
// 5xx, no answer), are imported again after a jittered exponential backoff, up to
// MaxAttempts rounds. Every retry is a call of its own through the limiter (the SDK's own
// retries are off), so throttling never makes the forwarder faster. A batch never holds one
// Id twice.
type Importer struct {
	API         sink.SecurityHubAPI
	Limiter     *Limiter
	Clock       Clock
	Log         *slog.Logger
	Concurrency int           // default 3
	MaxAttempts int           // default 6
	BaseBackoff time.Duration // default 500ms, doubling, capped at 20s
	// Sizes are the findings' JSON sizes by Id when the caller knows them (else measured).
	Sizes map[string]int
}

// ImportStats says what became of the findings.
type ImportStats struct {
	Imported  int
	Refused   int // refused for good (invalid): logged, never retried
	Failed    int // still failing with a retryable error after MaxAttempts
	Calls     int
	Throttled int // calls answered with throttling
	Retried   int // findings sent again
}

// Import imports fs (unique ids) and returns an error when some could not be imported after
// every attempt: the invocation then fails and Lambda retries it (or dead-letters it).
func (im *Importer) Import(ctx context.Context, fs []types.AwsSecurityFinding) (ImportStats, error) {
	var st ImportStats
	conc := max(im.Concurrency, 1)
	if im.Concurrency == 0 {
		conc = 3
	}
	attempts := im.MaxAttempts
	if attempts <= 0 {
		attempts = 6
	}
	base := im.BaseBackoff
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	pending := fs
	for attempt := 1; len(pending) > 0; attempt++ {
		batches := im.split(pending)
		var mu sync.Mutex
		var again []types.AwsSecurityFinding
		sem := make(chan struct{}, conc)
		var wg sync.WaitGroup
		for _, b := range batches {
			// A free worker first, then its slot: the call goes out at the slot it waited for.
			sem <- struct{}{}
			if err := im.Limiter.Wait(ctx); err != nil {
				<-sem
				wg.Wait()
				st.Failed += len(pending)
				return st, err
			}
			wg.Go(func() {
				defer func() { <-sem }()
				ok, refused, retry, throttled := im.call(ctx, b)
				mu.Lock()
				defer mu.Unlock()
				st.Calls++
				st.Imported += ok
				st.Refused += refused
				if throttled {
					st.Throttled++
				}
				again = append(again, retry...)
			})
		}
		wg.Wait()
		pending = again
		if len(pending) == 0 {
			break
		}
		if attempt >= attempts {
			st.Failed = len(pending)
			return st, fmt.Errorf("security hub: %d findings still failing after %d attempts", len(pending), attempts)
		}
		st.Retried += len(pending)
		d := min(base<<(attempt-1), 20*time.Second)
		d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
		im.Log.Warn("security hub: importing findings again after a retryable failure", "findings", len(pending), "attempt", attempt+1, "backoff", d.String())
		if err := im.Clock.Sleep(ctx, d); err != nil {
			st.Failed = len(pending)
			return st, err
		}
	}
	return st, nil
}

// call makes one BatchImportFindings call and sorts its findings.
func (im *Importer) call(ctx context.Context, b []types.AwsSecurityFinding) (ok, refused int, retry []types.AwsSecurityFinding, throttled bool) {
	res, err := im.API.BatchImportFindings(ctx, &securityhub.BatchImportFindingsInput{Findings: b})
	if err != nil {
		throttled = isThrottle(err)
		im.Log.Warn("security hub: batch import failed; will retry", "findings", len(b), "throttled", throttled, "err", err)
		return 0, 0, b, throttled
	}
	failed := map[string]types.ImportFindingsError{}
	for _, e := range res.FailedFindings {
		failed[aws.ToString(e.Id)] = e
	}
	for _, f := range b {
		e, bad := failed[aws.ToString(f.Id)]
		switch {
		case !bad:
			ok++
		case retryable(aws.ToString(e.ErrorCode)):
			retry = append(retry, f)
		default:
			refused++
			im.Log.Error("security hub refused a finding", "id", aws.ToString(f.Id), "code", aws.ToString(e.ErrorCode), "message", aws.ToString(e.ErrorMessage))
		}
	}
	return ok, refused, retry, false
}

// split cuts fs into calls of at most 100 findings and sink.MaxCallBytes.
func (im *Importer) split(fs []types.AwsSecurityFinding) [][]types.AwsSecurityFinding {
	var out [][]types.AwsSecurityFinding
	var cur []types.AwsSecurityFinding
	size := 0
	for _, f := range fs {
		n := im.Sizes[aws.ToString(f.Id)]
		if n == 0 {
			b, _ := json.Marshal(f)
			n = len(b)
		}
		if len(cur) > 0 && (len(cur) == sink.MaxFindingsPerCall || size+n > sink.MaxCallBytes) {
			out, cur, size = append(out, cur), nil, 0
		}
		cur = append(cur, f)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func isThrottle(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "toomanyrequests") || strings.Contains(s, "throttl") || strings.Contains(s, "rate exceeded")
}

// retryable tells FailedFindings codes worth another attempt (as the agent's sink does).
func retryable(code string) bool {
	c := strings.ToLower(code)
	for _, s := range []string{"throttl", "toomanyrequests", "internal", "serviceunavailable", "unavailable", "timeout", "limitexceeded"} {
		if strings.Contains(c, s) {
			return true
		}
	}
	return false
}
