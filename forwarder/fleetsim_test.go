//go:build !windows

package forwarder

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/internal/testca"
	"github.com/ec2sec/ec2sec/probes"
)

// The central-mode fleet simulation: N instances over a simulated day, on a simulated clock
// (nothing waits in real time). Each instance scans hourly after a random splay; its first
// scan sends its failing findings, later scans a change with some probability, and the
// lifecycle's refresh re-sends its findings 23 h after the first. Each sending scan is one
// findings event, delivered by the subscription to the stream a few seconds later; the event
// source hands the forwarder batches of up to 1,000 records or 30 s, one invocation at a time
// (one shard), and the real Forwarder.Handle decodes, checks, converts and imports them
// through its real Importer and Limiter into a Security Hub that enforces 10 calls a second,
// burst 30, and answers each call after 50 ms. Signature verification is replaced by reading
// the document (its cost is per event and measured by BenchmarkVerify); the importer makes one
// call at a time here, so the simulated clock stays a single timeline.

type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.t = c.t.Add(d)
	}
	return ctx.Err()
}

func (c *simClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// simHub is Security Hub's limit on the simulated clock: a token bucket of 10 a second,
// burst 30; a call without a token is throttled (and counted: the forwarder exceeded it).
type simHub struct {
	clock     *simClock
	tokens    float64
	last      time.Time
	calls     int
	throttled int
	maxBatch  int
	imported  map[string]string // id -> UpdatedAt
	scanned   map[string]time.Time
	latencies []time.Duration
	perSecond map[int64]int
}

func (h *simHub) BatchImportFindings(ctx context.Context, in *securityhub.BatchImportFindingsInput, _ ...func(*securityhub.Options)) (*securityhub.BatchImportFindingsOutput, error) {
	now := h.clock.Now()
	if h.last.IsZero() {
		h.tokens, h.last = 30, now
	}
	h.tokens = min(30, h.tokens+now.Sub(h.last).Seconds()*10)
	h.last = now
	h.calls++
	h.perSecond[now.Unix()]++
	if h.tokens < 1 {
		h.throttled++
		return nil, fmt.Errorf("TooManyRequestsException: Rate exceeded")
	}
	h.tokens--
	h.clock.Sleep(ctx, 50*time.Millisecond) // the call's round trip
	h.maxBatch = max(h.maxBatch, len(in.Findings))
	seen := map[string]bool{}
	for _, f := range in.Findings {
		id, up := aws.ToString(f.Id), aws.ToString(f.UpdatedAt)
		if seen[id] {
			return nil, fmt.Errorf("InvalidInputException: duplicate id %s", id)
		}
		seen[id] = true
		key := id + "@" + up
		if _, dup := h.imported[key]; dup {
			continue
		}
		h.imported[key] = up
		h.latencies = append(h.latencies, h.clock.Now().Sub(h.scanned[key]))
	}
	return &securityhub.BatchImportFindingsOutput{}, nil
}

type simOptions struct {
	Instances int
	Failing   int     // findings of the first scan
	Change    float64 // per later scan, the chance of one changed finding
	Interval  time.Duration
	Splay     time.Duration
	Span      time.Duration
}

type simSend struct {
	at   time.Time // when the event reaches the stream
	inst int
	scan int
}

type simResult struct {
	o                     simOptions
	events, findings      int
	imported              int
	calls, throttled      int
	invocations, maxBatch int
	maxPerSecond          int
	p50, p99, maxLatency  time.Duration
	maxInvocation         time.Duration
	cpu                   time.Duration
}

func simulateCentral(t testing.TB, o simOptions) simResult {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := &simClock{t: start}
	hub := &simHub{clock: clock, imported: map[string]string{}, scanned: map[string]time.Time{}, perSecond: map[int64]int{}}
	fw := &Forwarder{
		Config: Config{
			Verify: func(p sink.Proof) (Identity, string, error) {
				var id Identity
				err := json.Unmarshal([]byte(p.Document), &id)
				return id, ReasonMalformedDocument, err
			},
			HubAccount: acct, HubRegion: region, Partition: "aws",
		},
		Importer: &Importer{API: hub, Limiter: NewLimiter(DefaultRate, DefaultBurst, clock), Clock: clock, Log: slog.New(slog.DiscardHandler), Concurrency: 1},
		Log:      slog.New(slog.DiscardHandler),
		Clock:    clock,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var sends []simSend
	splays := make([]time.Duration, o.Instances)
	for i := range o.Instances {
		splays[i] = time.Duration(rng.Int64N(int64(o.Splay)))
		for k := 0; time.Duration(k)*o.Interval+splays[i] < o.Span; k++ {
			refresh := k > 0 && time.Duration(k)*o.Interval >= 23*time.Hour && time.Duration(k-1)*o.Interval < 23*time.Hour
			if k == 0 || refresh || rng.Float64() < o.Change {
				delay := time.Duration(1000+rng.IntN(4000)) * time.Millisecond // subscription to stream
				sends = append(sends, simSend{start.Add(splays[i] + time.Duration(k)*o.Interval + delay), i, k})
			}
		}
	}
	slices.SortFunc(sends, func(a, b simSend) int { return a.at.Compare(b.at) })
	// records builds the event of one sending scan (as the agent's central sink would).
	docs := map[int]string{}
	event := func(s simSend) *LogsData {
		inst := fmt.Sprintf("i-%017x", 0x5eed000+s.inst)
		doc, ok := docs[s.inst]
		if !ok {
			doc = testca.Document(inst, acct, region)
			docs[s.inst] = doc
		}
		at := start.Add(splays[s.inst] + time.Duration(s.scan)*o.Interval).Truncate(time.Millisecond)
		n := o.Failing
		if s.scan > 0 && !(time.Duration(s.scan)*o.Interval >= 23*time.Hour && time.Duration(s.scan-1)*o.Interval < 23*time.Hour) {
			n = 1
		}
		var recs []asff.Record
		for j := range n {
			r := record(inst, fmt.Sprintf("check-%02d", j), probes.Failed, at)
			r.Result.Evidence = map[string]any{"path": fmt.Sprintf("/etc/app/conf-%02d", j), "detail": strings.Repeat("d", 200)}
			recs = append(recs, r)
			hub.scanned[r.ID+"@"+asff.Stamp(at)] = at
		}
		return payload(inst, fuzzEvent(sink.Proof{Document: doc, RSA2048: "sim"}, recs...))
	}
	res := simResult{o: o, events: len(sends)}
	cpu0 := cpuNow()
	ctx := context.Background()
	const batchSize, window = 1000, 30 * time.Second
	for i := 0; i < len(sends); {
		// The event source invokes when a full batch is there or the oldest waited the window,
		// and not before the previous invocation ended.
		at := sends[i].at.Add(window)
		if j := i + batchSize - 1; j < len(sends) && sends[j].at.Before(at) {
			at = sends[j].at
		}
		if now := clock.Now(); now.After(at) {
			at = now
		}
		clock.set(at)
		var ds []*LogsData
		for i < len(sends) && !sends[i].at.After(at) && len(ds) < batchSize {
			ds = append(ds, event(sends[i]))
			i++
		}
		begin := clock.Now()
		r, err := fw.Handle(ctx, KinesisEvent(ds...))
		if err != nil || len(r.Rejected) > 0 {
			t.Fatalf("invocation at %s: %+v %v", clock.Now(), r, err)
		}
		res.invocations++
		res.maxInvocation = max(res.maxInvocation, clock.Now().Sub(begin))
	}
	res.cpu = cpuNow() - cpu0
	res.findings = len(hub.scanned)
	res.imported = len(hub.imported)
	res.calls, res.throttled, res.maxBatch = hub.calls, hub.throttled, hub.maxBatch
	for _, n := range hub.perSecond {
		res.maxPerSecond = max(res.maxPerSecond, n)
	}
	slices.Sort(hub.latencies)
	if n := len(hub.latencies); n > 0 {
		pct := func(p float64) time.Duration { return hub.latencies[int(math.Ceil(p*float64(n)))-1] }
		res.p50, res.p99, res.maxLatency = pct(0.5), pct(0.99), hub.latencies[n-1]
	}
	return res
}

func (r simResult) check(t testing.TB) {
	if r.imported != r.findings {
		t.Errorf("%d instances: %d of %d findings reached Security Hub", r.o.Instances, r.imported, r.findings)
	}
	if r.throttled > 0 {
		t.Errorf("%d instances: %d calls throttled: the forwarder exceeded 10 calls a second (burst 30)", r.o.Instances, r.throttled)
	}
	if r.maxLatency >= r.o.Interval {
		t.Errorf("%d instances: a finding took %s from its scan to Security Hub, not under the interval %s", r.o.Instances, r.maxLatency, r.o.Interval)
	}
}

func (r simResult) row() string {
	return fmt.Sprintf("| %d | %d | %d | %d | %d (%.2f per instance) | %d | %d | %s | %s | %s | %s | %s |",
		r.o.Instances, r.events, r.findings, r.imported, r.calls, float64(r.calls)/float64(r.o.Instances), r.throttled, r.maxPerSecond,
		r.p50.Round(time.Second), r.p99.Round(time.Second), r.maxLatency.Round(time.Second), r.maxInvocation.Round(time.Second), r.cpu.Round(time.Millisecond))
}

const simHeader = "| instances | findings events | findings sent | in Security Hub | BatchImportFindings calls | throttled | most calls in one second | scan to Security Hub p50 | p99 | max | longest invocation | CPU of the run |\n|---|---|---|---|---|---|---|---|---|---|---|---|"

// TestCentralFleet runs the simulation for 1,000 instances by default; EC2SEC_CENTRAL_FLEET
// (comma-separated sizes, e.g. 10000,100000) runs others, and EC2SEC_CENTRAL_FLEET_OUT
// writes the Markdown table (benchcmp puts it into BENCHMARKS.md).
func TestCentralFleet(t *testing.T) {
	sizes := []int{1000}
	if v := os.Getenv("EC2SEC_CENTRAL_FLEET"); v != "" {
		sizes = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				t.Fatalf("EC2SEC_CENTRAL_FLEET %q", v)
			}
			sizes = append(sizes, n)
		}
	}
	var b strings.Builder
	b.WriteString(simHeader + "\n")
	var o simOptions
	for _, n := range sizes {
		o = simOptions{Instances: n, Failing: 5, Change: 0.1, Interval: time.Hour, Splay: 10 * time.Minute, Span: 24 * time.Hour}
		r := simulateCentral(t, o)
		r.check(t)
		b.WriteString(r.row() + "\n")
		t.Logf("%s", r.row())
	}
	fmt.Fprintf(&b, "\nSimulated day on a simulated clock: hourly scans after a %s splay (every instance starting within it: a fleet-wide deploy), %d failing findings on the first scan, a %.0f%% chance per later scan of one change, the refresh of every finding 23 h after the first import; one findings event per sending scan, in the stream 1-5 s later; batches of up to 1,000 records or 30 s, one invocation at a time; the forwarder's limiter at %d calls a second, burst %d, against Security Hub's 10, burst 30, each call 50 ms. The real Forwarder.Handle decodes, checks, converts (agent/asff) and imports; the signature check is replaced by reading the document (BenchmarkVerify measures it per event).\n",
		o.Splay, o.Failing, o.Change*100, DefaultRate, DefaultBurst)
	if p := os.Getenv("EC2SEC_CENTRAL_FLEET_OUT"); p != "" {
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkVerify is the forwarder's cost per findings event of the signature check.
func BenchmarkVerify(b *testing.B) {
	ca := testca.New(b, "aws")
	doc := testca.Document(instA, acct, region)
	p := sink.Proof{Document: doc, RSA2048: ca.Sign(b, doc, testca.Options{})}
	v := PKCS7Verifier(Trust{region: {ca.Cert}})
	for b.Loop() {
		if _, _, err := v(p); err != nil {
			b.Fatal(err)
		}
	}
}
