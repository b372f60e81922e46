package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/agent/state"
	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/probes"
)

// The fleet simulation: N agents as goroutines, each with its own instance id, state dir,
// spool and sinks, running the real Reporter (lifecycle diff, spool, flush) and the real
// sinks over the real SDK (signing, serialization, standard retryer) against ONE fake
// Security Hub that enforces 10 TPS, burst 30, per account and region. Time is compressed:
// the simulated clock runs `scale` times faster than the real one, and everything that waits
// is scaled with it (the splay, the interval, the daemon's retry backoff, the SDK's backoff,
// the sink's call spacing and the fake's rate limit), so the dynamics are those of real time.
//
// EC2SEC_FLEET=10000 (with -short=false) runs the full-size simulation: 10,000 agents over
// an in-process transport (no sockets; everything above the socket is real) and 500 over
// real loopback HTTP (EC2SEC_FLEET_SPLAY and EC2SEC_FLEET_SCALE change the splay and the
// clock of the first). The default run is a small version of both.

// fleetClock is the compressed clock.
type fleetClock struct {
	start time.Time // real time at the fleet start
	v0    time.Time // simulated time at the fleet start
	scale float64   // simulated seconds per real second
}

func (c *fleetClock) now() time.Time {
	return c.v0.Add(time.Duration(float64(time.Since(c.start)) * c.scale))
}

// real is how long a simulated duration takes in real time.
func (c *fleetClock) real(d time.Duration) time.Duration { return time.Duration(float64(d) / c.scale) }

func (c *fleetClock) sleepUntil(ctx context.Context, v time.Time) error {
	d := c.real(v.Sub(c.now()))
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

// scaledBackoff is the SDK's own jittered exponential backoff (1 s x 2^attempt, capped at
// 20 s), run on the compressed clock.
type scaledBackoff struct {
	b retry.BackoffDelayer
	c *fleetClock
}

func (s scaledBackoff) BackoffDelay(attempt int, err error) (time.Duration, error) {
	d, err := s.b.BackoffDelay(attempt, err)
	return s.c.real(d), err
}

// inprocHTTP hands SDK requests straight to the fake's handler: no sockets, so 10,000
// agents fit on a small machine; signing, serialization and retries are the SDK's own.
type inprocHTTP struct {
	h    http.Handler
	sent *atomic.Int64 // request bytes (headers as HTTP/1.1 writes them, and body)
}

func (c inprocHTTP) Do(r *http.Request) (resp *http.Response, err error) {
	if c.sent != nil {
		n := int64(len(r.Method)+len(r.URL.RequestURI())+len(" HTTP/1.1\r\n")+len("Host: \r\n")+len(r.Host)) + max(r.ContentLength, 0) + 2
		for k, vs := range r.Header {
			for _, v := range vs {
				n += int64(len(k) + len(v) + 4)
			}
		}
		c.sent.Add(n)
	}
	rec := httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil { // the fake's connection reset
			resp, err = nil, fmt.Errorf("connection reset: %v", p)
		}
	}()
	c.h.ServeHTTP(rec, r)
	resp = rec.Result()
	resp.Request = r
	return resp, nil
}

type fleetOptions struct {
	N        int           // instances
	Accounts int           // accounts they are spread over (Security Hub's limit is per account)
	Checks   int           // results per scan
	Failing  int           // failing results on the first scan (findings to import)
	Interval time.Duration // simulated
	Splay    time.Duration // simulated
	Scale    float64
	InProc   bool
	Base     string        // where the state dirs go
	Refresh  time.Duration // the Reporter's refresh period; 0: state.DefaultRefresh
}

// fleetAgent is one simulated instance.
type fleetAgent struct {
	id       string
	ident    probesIdentity
	rep      *Reporter
	statuses []probes.Status
	rng      *rand.Rand
	spooled  int // log events spooled
	// deliveredAt: simulated time its first scan was fully delivered (zero: not yet).
	deliveredAt time.Time
	flushes     int
	// lag: how much later than scheduled its first scan started, in simulated time (the
	// machine falling behind the compressed clock, which counts against delivery).
	lag   time.Duration
	sched time.Time // when its first scan was due
	// firstFlush..firstFlushEnd: simulated span of its first flush, during which its first
	// BatchImportFindings reached the fake.
	firstFlush, firstFlushEnd time.Time
}

// probesIdentity avoids importing metadata under another name here.
type probesIdentity = struct{ account string }

// report is the agent's scan at simulated time at: its results, some of which flip status
// between scans with probability change.
func (a *fleetAgent) report(o fleetOptions, scan int, at time.Time, change float64) *Report {
	if a.statuses == nil {
		a.statuses = make([]probes.Status, o.Checks)
		for j := range a.statuses {
			a.statuses[j] = probes.Passed
			if j < o.Failing {
				a.statuses[j] = probes.Failed
			}
		}
	} else if change > 0 && a.rng.Float64() < change {
		j := a.rng.IntN(o.Checks)
		if a.statuses[j] == probes.Failed {
			a.statuses[j] = probes.Passed
		} else {
			a.statuses[j] = probes.Failed
		}
	}
	id := testIdentity(a.id)
	id.AccountID = a.ident.account
	rs := make([]probes.Result, o.Checks)
	for j := range rs {
		rs[j] = probes.NewResult("imds-v1-enabled", a.statuses[j], fmt.Sprintf("/etc/app/conf-%02d", j), "setting "+strconv.Itoa(j)+" is "+string(a.statuses[j])).
			With("path", fmt.Sprintf("/etc/app/conf-%02d", j)).With("detail", strings.Repeat("d", 200))
	}
	rep := synthetic(id, at, []string{"imds"}, rs...)
	rep.ScannedAt = at.UTC().Truncate(time.Millisecond)
	return rep
}

// fleet is a simulation's shared parts.
type fleet struct {
	o      fleetOptions
	f      *awsfake.Server
	clock  *fleetClock
	cw     *cloudwatchlogs.Client
	sh     *securityhub.Client
	agents []*fleetAgent
	cpu    time.Duration // CPU the process used during the run
	sent   *atomic.Int64 // request bytes sent (in-process transport only)
}

func newFleet(t testing.TB, o fleetOptions, span time.Duration) *fleet {
	f := awsfake.New(t)
	f.Compact = true
	for k, v := range f.Env() {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSIGNINGKEY000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", plantedSigningKey)
	t.Setenv("AWS_REGION", "us-east-1")
	// Simulated time ends before the real now, so CloudWatch never sees events "from the
	// future", and well within its 14 days.
	now := time.Now()
	c := &fleetClock{start: now, v0: now.Add(-span - 2*time.Hour), scale: o.Scale}
	f.RateClock = c.now
	cfg, err := sink.LoadAWS(context.Background(), sink.AWSOptions{
		Backoff:     scaledBackoff{retry.NewExponentialJitterBackoff(20 * time.Second), c},
		HTTPTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	sent := new(atomic.Int64)
	if o.InProc {
		cfg.HTTPClient = inprocHTTP{f.Config.Handler, sent}
	}
	// One SDK client per service for all agents: clients hold no per-call state that would
	// change what is sent (the retryer has no client-side quota), and 10,000 of each would
	// only cost memory.
	fl := &fleet{o: o, f: f, clock: c, cw: cloudwatchlogs.NewFromConfig(cfg), sh: securityhub.NewFromConfig(cfg), sent: sent}
	log := slog.New(slog.DiscardHandler)
	for i := range o.N {
		a := &fleetAgent{id: fmt.Sprintf("i-%017x", 0xf1ee7000+i), rng: rand.New(rand.NewPCG(uint64(i), 9))}
		a.ident.account = fmt.Sprintf("%012d", 100000000000+i%max(o.Accounts, 1))
		hub := sink.NewSecurityHubAPI(fl.sh, log)
		hub.SetMinInterval(c.real(sink.MinCallInterval))
		cc := DefaultConfig()
		cc.StateDir = filepath.Join(o.Base, a.id)
		a.rep, err = NewReporter(cc, log, ReporterOptions{
			CloudWatch:  sink.NewCloudWatchAPI(fl.cw, cc.CloudWatchLogs.LogGroup, a.id, log),
			SecurityHub: hub,
			Refresh:     o.Refresh,
		})
		if err != nil {
			t.Fatal(err)
		}
		fl.agents = append(fl.agents, a)
	}
	return fl
}

// fleetBase is where the agents' state dirs go: a tmpfs when there is one (10,000 agents
// fsync every spool file), else the test's temp dir.
func fleetBase(t testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "ec2sec-fleet-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// backoff is the daemon's retry delay after the n-th failed delivery (RunCommand: 30 s
// doubling, capped at 15 min or the interval, jittered to half..full).
func backoff(rng *rand.Rand, n int, interval time.Duration) time.Duration {
	ceil := min(15*time.Minute, interval)
	d := (30 * time.Second) << min(max(n-1, 0), 20)
	if d > ceil || d <= 0 {
		d = ceil
	}
	return d/2 + time.Duration(rng.Int64N(int64(d/2)+1))
}

// deliver is one agent's first interval as `run` does it: the first scan after a random
// splay, spooled and flushed, then retries with the daemon's backoff until its spool is empty.
func (fl *fleet) deliver(ctx context.Context, a *fleetAgent) error {
	c := fl.clock
	at := c.v0.Add(time.Duration(a.rng.Int64N(int64(fl.o.Splay) + 1)))
	if err := c.sleepUntil(ctx, at); err != nil {
		return err
	}
	a.lag, a.sched = c.now().Sub(at), at
	st, err := a.rep.Spool(ctx, a.report(fl.o, 0, c.now(), 0))
	if err != nil {
		return err
	}
	a.spooled += st.LogEvents
	for n := 1; ; n++ {
		if n == 1 {
			a.firstFlush = c.now()
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		fs, err := a.rep.Flush(fctx)
		cancel()
		if n == 1 {
			a.firstFlushEnd = c.now()
		}
		a.flushes++
		if err == nil && sum(fs.Pending) == 0 {
			a.deliveredAt = c.now()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := c.sleepUntil(ctx, c.now().Add(backoff(a.rng, n, fl.o.Interval))); err != nil {
			return err
		}
	}
}

// runDelivery starts every agent at once (a fleet-wide deploy: the worst case) and waits
// until all delivered or a simulated interval and a half passed.
func (fl *fleet) runDelivery(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), fl.clock.real(fl.o.Interval*3/2))
	defer cancel()
	cpu0 := cpuTime()
	defer func() { fl.cpu = cpuTime() - cpu0 }()
	var wg sync.WaitGroup
	var errs atomic.Int64
	for _, a := range fl.agents {
		wg.Go(func() {
			if err := fl.deliver(ctx, a); err != nil {
				if errs.Add(1) <= 3 {
					t.Errorf("%s: %v", a.id, err)
				}
			}
		})
	}
	wg.Wait()
}

// check holds the fake to every agent's state: every finding the state says it sent is in
// Security Hub in that version, every log event spooled arrived, each stream once, nothing
// left in a spool, no API limit broken.
func (fl *fleet) check(t testing.TB) (findings int) {
	got := fl.f.Findings()
	bad := 0
	for _, a := range fl.agents {
		if n, _, _ := a.rep.spool.Size(); n != 0 {
			t.Errorf("%s: %d spool files left", a.id, n)
		}
		s, err := state.Load(filepath.Join(a.rep.dir, "state.json"))
		if err != nil {
			t.Fatal(err)
		}
		for id, e := range s.Entries {
			if e.LastImported.IsZero() {
				continue
			}
			findings++
			var m struct{ UpdatedAt, RecordState string }
			if err := json.Unmarshal(got[id], &m); err != nil || m.UpdatedAt != stamp(e.LastImported) || (m.RecordState == "ACTIVE") != e.Active {
				if bad++; bad <= 5 {
					t.Errorf("%s: Security Hub has %s, the state says active %v at %s", id, got[id], e.Active, stamp(e.LastImported))
				}
			}
		}
		if n := len(fl.f.Events("/ec2sec/findings", a.id)); n != a.spooled {
			t.Errorf("%s: %d log events arrived, %d spooled", a.id, n, a.spooled)
		}
	}
	if v := fl.f.Violations(); len(v) > 0 {
		t.Errorf("%d API limit violations, e.g. %s", len(v), v[0])
	}
	return findings
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// summarize logs when the agents were done, in simulated time since the fleet started.
// It returns the longest time from an instance's first scan to everything delivered, and
// from the fleet's start to the last instance done.
func (fl *fleet) summarize(t testing.TB, what string, findings int) (latency, fleetDone time.Duration) {
	var ds, ls []time.Duration
	flushes := 0
	var lag time.Duration
	for _, a := range fl.agents {
		lag = max(lag, a.lag)
		if !a.deliveredAt.IsZero() {
			ds = append(ds, a.deliveredAt.Sub(fl.clock.v0))
			ls = append(ls, a.deliveredAt.Sub(a.sched))
		}
		flushes += a.flushes
	}
	if len(ds) < len(fl.agents) {
		t.Errorf("%s: %d of %d agents never delivered within 1.5 intervals", what, len(fl.agents)-len(ds), len(fl.agents))
		return 0, 0
	}
	slices.Sort(ds)
	slices.Sort(ls)
	pct := func(p float64) time.Duration { return ds[int(math.Ceil(p*float64(len(ds))))-1].Round(time.Second) }
	lpct := func(p float64) time.Duration { return ls[int(math.Ceil(p*float64(len(ls))))-1].Round(time.Second) }
	f := fl.f
	t.Logf("%s: %d instances in %d account(s), %d failing of %d results each, interval %s, splay %s, clock x%g:\n"+
		"  all %d findings in Security Hub with their final state; last instance done %s after the fleet started (p50 %s, p90 %s, p99 %s); from an instance's first scan to all its findings delivered: p50 %s, p99 %s, max %s; real time %s, CPU %s (on %d cores); the machine lagged up to %s behind the clock\n"+
		"  BatchImportFindings: %d calls (%d throttled, %.2f per instance), PutLogEvents %d, CreateLogStream %d, flushes %d (%.2f per instance)",
		what, fl.o.N, max(fl.o.Accounts, 1), fl.o.Failing, fl.o.Checks, fl.o.Interval, fl.o.Splay, fl.o.Scale,
		findings, pct(1), pct(0.5), pct(0.9), pct(0.99), lpct(0.5), lpct(0.99), lpct(1), time.Since(fl.clock.start).Round(time.Millisecond), fl.cpu.Round(time.Millisecond), runtime.NumCPU(), lag.Round(time.Second),
		f.Calls(awsfake.OpBatchImportFindings), f.Throttled(awsfake.OpBatchImportFindings),
		float64(f.Calls(awsfake.OpBatchImportFindings))/float64(fl.o.N),
		f.Calls(awsfake.OpPutLogEvents), f.Calls(awsfake.OpCreateLogStream), flushes, float64(flushes)/float64(fl.o.N))
	return ls[len(ls)-1], ds[len(ds)-1]
}

// stormed reports whether the agents' first imports certainly came faster than Security
// Hub's limit allows (a burst of 30, then 10 a second): some window [T1, T2] holds, entirely,
// more first flushes (each makes one import somewhere inside it) than 30 + 10/s·(T2-T1).
// Then some must have been throttled. It errs toward "no storm" on a slow machine.
func (fl *fleet) stormed() bool {
	type span struct{ from, to time.Time }
	var ss []span
	for _, a := range fl.agents {
		if !a.firstFlush.IsZero() && !a.firstFlushEnd.IsZero() {
			ss = append(ss, span{a.firstFlush, a.firstFlushEnd})
		}
	}
	for _, t1 := range ss {
		for _, t2 := range ss {
			if t2.to.Before(t1.from) {
				continue
			}
			n := 0
			for _, s := range ss {
				if !s.from.Before(t1.from) && !s.to.After(t2.to) {
					n++
				}
			}
			if float64(n) > 30+10*t2.to.Sub(t1.from).Seconds() {
				return true
			}
		}
	}
	return false
}

// TestFleetDelivery: every agent of a fleet starting at once delivers all its findings within
// one interval, through throttling. The default run is small (200 agents over loopback HTTP,
// their first scans squeezed into a 10 s splay so that they overrun the 10 TPS limit);
// EC2SEC_FLEET=10000 with -short=false runs 10,000 agents in-process and 500 over HTTP with
// the default 10 min splay.
func TestFleetDelivery(t *testing.T) {
	testenv.System(t)
	type run struct {
		name string
		o    fleetOptions
	}
	runs := []run{{"loopback HTTP, storm", fleetOptions{N: 200, Checks: 30, Failing: 10, Interval: time.Hour, Splay: 10 * time.Second, Scale: 20}}}
	if n, _ := strconv.Atoi(os.Getenv("EC2SEC_FLEET")); n > 0 && !testing.Short() {
		// The clock runs x12: an hour in 5 minutes, slow enough for a small machine to keep
		// up with 10,000 agents (the lag is logged). EC2SEC_FLEET_SCALE overrides it.
		scale := 12.0
		if s, err := strconv.ParseFloat(os.Getenv("EC2SEC_FLEET_SCALE"), 64); err == nil && s > 0 {
			scale = s
		}
		splay := 10 * time.Minute // the default; EC2SEC_FLEET_SPLAY overrides it
		if d, err := time.ParseDuration(os.Getenv("EC2SEC_FLEET_SPLAY")); err == nil && d > 0 {
			splay = d
		}
		runs = []run{
			{"in-process", fleetOptions{N: n, Checks: 30, Failing: 10, Interval: time.Hour, Splay: splay, Scale: scale, InProc: true}},
			{"loopback HTTP", fleetOptions{N: 500, Checks: 30, Failing: 10, Interval: time.Hour, Splay: 10 * time.Minute, Scale: 60}},
		}
	}
	for _, r := range runs {
		t.Run(strings.ReplaceAll(r.name, " ", "_"), func(t *testing.T) {
			r.o.Base = fleetBase(t)
			fl := newFleet(t, r.o, r.o.Interval*2)
			fl.runDelivery(t)
			n := fl.check(t)
			if want := r.o.N * r.o.Failing; n != want {
				t.Errorf("%d findings sent, want %d", n, want)
			}
			// Every instance's findings are all in Security Hub within one interval of its
			// first scan: before its next scan, so nothing piles up.
			last, done := fl.summarize(t, r.name, n)
			if last > r.o.Interval {
				t.Errorf("an instance took %s from its first scan to delivering everything, more than one interval", last)
			}
			// 10 TPS after a burst of 30 is the floor for ceil(findings/100) per instance calls.
			calls := r.o.N * int(math.Ceil(float64(r.o.Failing)/100))
			floor := time.Duration(float64(calls-30) / 10 * float64(time.Second))
			if done < floor {
				t.Errorf("done in %s, faster than 10 TPS allows (%s): the limit was not enforced", done, floor)
			}
			// Calls that arrived faster than the limit must meet throttling. Whether they did
			// depends on the machine (the race detector, a loaded CI runner spread them out),
			// so judge by when they really came, not by the splay asked for.
			switch {
			case !fl.stormed():
				t.Logf("the first calls came no faster than 10 TPS after a burst of 30 (a slow machine): throttling not exercised here; internal/awsfake's TestHubRateLimit covers the limit")
			case fl.f.Throttled(awsfake.OpBatchImportFindings) == 0:
				t.Error("first calls arrived above 10 TPS after a burst of 30, yet none was throttled")
			}
		})
	}
}

// TestFleetCallsPerDay counts the API calls an instance makes per day, on its first day and
// in the steady state (delta reporting: only new, changed and resolved results, plus the daily
// refresh of still-failing findings), by running agents through two days of hourly scans.
// Call counts per instance do not depend on the fleet's size as long as nothing is
// throttled, so 20 agents suffice; the rate limit is not binding here (a fast clock).
func TestFleetCallsPerDay(t *testing.T) {
	testenv.System(t)
	// A daily refresh (not the weekly default), so that both days show one.
	o := fleetOptions{N: 20, Checks: 30, Failing: 10, Interval: time.Hour, Splay: 10 * time.Minute, Scale: 1e6, Base: fleetBase(t), Refresh: 23 * time.Hour}
	const change = 0.1 // per scan, the chance that one result flips: ~2.4 changes a day
	fl := newFleet(t, o, 48*time.Hour)
	// DescribeLogStreams and AssumeRole are counted to show what the agent does not call:
	// it never describes streams (it creates its stream and takes "already exists" as done),
	// and these agents have no role_arn (with one, see the README: one AssumeRole per scan).
	ops := []string{awsfake.OpPutLogEvents, awsfake.OpBatchImportFindings, awsfake.OpCreateLogStream, "DescribeLogStreams", awsfake.OpAssumeRole}
	snapshot := func() map[string]int {
		m := map[string]int{}
		for _, op := range ops {
			m[op] = fl.f.Calls(op)
		}
		return m
	}
	// Each agent scans at its splay + k hours; simulated time is the schedule itself, and all
	// agents meet at the day boundary so that calls are counted per day.
	day := func(from, to int) {
		var wg sync.WaitGroup
		for _, a := range fl.agents {
			wg.Go(func() {
				off := time.Duration(a.rng.Int64N(int64(o.Splay)))
				for k := from; k < to; k++ {
					at := fl.clock.v0.Add(off + time.Duration(k)*o.Interval)
					st, err := a.rep.Spool(context.Background(), a.report(o, k, at, change))
					if err != nil {
						t.Error(err)
						return
					}
					a.spooled += st.LogEvents
					if fs, err := a.rep.Flush(context.Background()); err != nil || sum(fs.Pending) > 0 {
						t.Errorf("%s scan %d: %v %v", a.id, k, err, fs.Pending)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	day(0, 24)
	d1 := snapshot()
	day(24, 48)
	d2 := snapshot()
	fl.check(t)
	if th := fl.f.Throttled(awsfake.OpBatchImportFindings); th > 0 {
		t.Errorf("%d calls throttled: the counts would include retries", th)
	}
	per := func(n int) float64 { return float64(n) / float64(o.N) }
	var b strings.Builder
	fmt.Fprintf(&b, "API calls per instance per day (%d instances, %d results, %d failing at first, hourly scans, %.0f%% chance per scan of a change):\n", o.N, o.Checks, o.Failing, change*100)
	fmt.Fprintf(&b, "  %-22s %10s %13s\n", "call", "first day", "steady state")
	for _, op := range ops {
		fmt.Fprintf(&b, "  %-22s %10.2f %13.2f\n", op, per(d1[op]), per(d2[op]-d1[op]))
	}
	t.Log(b.String())
	// What must hold, whatever the random changes: one PutLogEvents per scan for the run
	// summary (EMF) and a few for changes; one stream creation per agent process; on the
	// first day one import of every finding plus the refresh 23 h later; in the steady state
	// the daily refresh and the changes only.
	if p := per(d2[awsfake.OpPutLogEvents] - d1[awsfake.OpPutLogEvents]); p < 24 || p > 24+24 {
		t.Errorf("steady-state PutLogEvents per day %.2f, want 24 (summaries) plus changes", p)
	}
	// One per agent process; two for those that came before the log group existed (the
	// first try finds no group, the agent creates it and tries again).
	if p := per(d1[awsfake.OpCreateLogStream]); p < 1 || p > 2 || d2[awsfake.OpCreateLogStream] != d1[awsfake.OpCreateLogStream] {
		t.Errorf("CreateLogStream %.2f on the first day, %d later; want 1 to 2 per agent process, then none", p, d2[awsfake.OpCreateLogStream]-d1[awsfake.OpCreateLogStream])
	}
	if p := per(d1[awsfake.OpBatchImportFindings]); p < 2 {
		t.Errorf("first-day BatchImportFindings %.2f per instance, want at least 2 (first import and the refresh)", p)
	}
	if p := per(d2[awsfake.OpBatchImportFindings] - d1[awsfake.OpBatchImportFindings]); p < 1 || p > 1+24*change*3 {
		t.Errorf("steady-state BatchImportFindings %.2f per instance, want about 1 refresh plus changes", p)
	}
}
