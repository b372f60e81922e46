package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/agent/spool"
	"github.com/ec2sec/ec2sec/agent/state"
	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
)

const chaosHost = "i-0cccccccccccccc01"

// chaosReport is scan i of a host with n results whose statuses flip, some of which vanish,
// each with blob bytes of evidence (so the spool bound and the disk fill up quickly).
func chaosReport(host string, i, n, blob int, at time.Time) *Report {
	var rs []probes.Result
	for j := range n {
		if (i*7+j)%11 == 0 {
			continue // gone this time
		}
		st := probes.Failed
		if (i+j)%3 == 0 {
			st = probes.Passed
		}
		rs = append(rs, probes.NewResult("imds-v1-enabled", st, fmt.Sprintf("/etc/conf-%03d", j), fmt.Sprintf("iteration %d", i%4)).
			With("blob", strings.Repeat("e", blob)))
	}
	rep := synthetic(testIdentity(host), at, []string{"imds"}, rs...)
	rep.ScannedAt = at.UTC().Truncate(time.Millisecond)
	return rep
}

// ledger is what the test itself knows of every report: what each put into the spool and
// what each flush said, to reconcile with what arrived.
type ledger struct {
	spooled, dropped int                  // log events spooled and dropped, summed over reports
	droppedAt        map[int64]int        // scan time (ms) -> DroppedEvents of that report
	rejected         map[string]int       // per sink, summed over flushes
	lastReport       *Report              // the newest report spooled
	seen             map[string]bool      // every result id ever reported
	maxSpool         int64                // the largest spool dir seen after a cycle
	spoolSizes       []int64              // spool dir size after each cycle
	failedSpool      int                  // reports that could not be spooled (full disk)
	stats            map[int64]SpoolStats // scan time (ms) -> its stats
}

func newLedger() *ledger {
	return &ledger{droppedAt: map[int64]int{}, rejected: map[string]int{}, seen: map[string]bool{}, stats: map[int64]SpoolStats{}}
}

// spool spools rep and records its stats; an error is returned, not fatal (a full disk).
func (l *ledger) spool(t *testing.T, r *Reporter, rep *Report) error {
	t.Helper()
	st, err := r.Spool(context.Background(), rep)
	if err != nil {
		l.failedSpool++
		return err
	}
	// The run summary as spooled must count every drop its report made (checked here, since
	// a later report may drop it before it is delivered).
	if names, _ := r.spool.Pending(spool.Logs); st.LogEvents > 0 && len(names) > 0 {
		b, err := r.spool.Read(names[len(names)-1])
		if err != nil {
			t.Fatal(err)
		}
		var e sink.LogEvent
		var m struct{ DroppedEvents int }
		json.Unmarshal(b.Items[len(b.Items)-1], &e)
		if json.Unmarshal([]byte(e.Message), &m) != nil || e.Timestamp != rep.ScannedAt.UnixMilli() {
			t.Fatalf("the newest log batch does not end with this report's summary: %s", e.Message)
		}
		if m.DroppedEvents != st.DroppedEvents {
			t.Errorf("report at %s: spooled summary says %d dropped, the report dropped %d", rep.ScannedAt, m.DroppedEvents, st.DroppedEvents)
		}
	}
	l.spooled += st.LogEvents
	l.dropped += st.DroppedEvents
	l.droppedAt[rep.ScannedAt.UnixMilli()] = st.DroppedEvents
	l.stats[rep.ScannedAt.UnixMilli()] = st
	l.lastReport = rep
	for _, res := range rep.Results {
		l.seen[res.ID] = true
	}
	return nil
}

func (l *ledger) flush(r *Reporter) (FlushStats, error) {
	fs, err := r.Flush(context.Background())
	for k, v := range fs.Rejected {
		l.rejected[k] += v
	}
	return fs, err
}

// measure records the spool dir's size (every file, temp files included).
func (l *ledger) measure(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	entries, err := os.ReadDir(filepath.Join(dir, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
	}
	l.spoolSizes = append(l.spoolSizes, total)
	l.maxSpool = max(l.maxSpool, total)
	return total
}

// reconcileLogs: every log event spooled arrived in CloudWatch Logs or was counted as
// dropped (by the bound) or rejected; each delivered run summary states exactly the drops its
// report made; duplicates only from answers the fake lost on purpose.
func (l *ledger) reconcileLogs(t *testing.T, f *awsfake.Server, host string, lostCalls int) {
	t.Helper()
	type key struct {
		ts  int64
		msg string
	}
	uniq := map[key]int{}
	evs := f.Events("/ec2sec/findings", host)
	for _, e := range evs {
		uniq[key{e.Timestamp, e.Message}]++
	}
	dups := len(evs) - len(uniq)
	summaries, reported := 0, 0
	for k := range uniq {
		var m map[string]any
		if err := json.Unmarshal([]byte(k.msg), &m); err != nil {
			t.Fatalf("event is not JSON: %v", err)
		}
		if m["type"] != "run-summary" {
			continue
		}
		summaries++
		n := int(m["DroppedEvents"].(float64))
		reported += n
		if want, ok := l.droppedAt[k.ts]; !ok {
			t.Errorf("summary of an unknown report at %d", k.ts)
		} else if n != want {
			t.Errorf("run summary at %d says %d events dropped; that report dropped %d", k.ts, n, want)
		}
	}
	rej := l.rejected["cloudwatch_logs"]
	if got := len(uniq) + l.dropped + rej; got != l.spooled {
		t.Errorf("log events: %d spooled, but %d arrived + %d dropped + %d rejected = %d", l.spooled, len(uniq), l.dropped, rej, got)
	}
	if dups > 0 && lostCalls == 0 {
		t.Errorf("%d duplicate log events without a lost answer", dups)
	}
	t.Logf("log events: %d spooled = %d arrived + %d dropped (counted; %d of them in delivered run summaries) + %d rejected; %d duplicates from %d lost answers",
		l.spooled, len(uniq), l.dropped, reported, rej, dups, lostCalls)
}

// checkHubMatchesState: Security Hub holds, for every finding the lifecycle state says it
// sent, exactly that version (UpdatedAt, RecordState), unless Security Hub refused that very
// version for good; every finding the state forgot is archived. It returns how many it
// checked.
func checkHubMatchesState(t *testing.T, f *awsfake.Server, dir string) int {
	t.Helper()
	s, err := state.Load(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	refused := map[[2]string]bool{}
	for _, ff := range f.Failed() {
		if ff.ErrorCode == "InvalidInput" {
			refused[[2]string{ff.Id, ff.UpdatedAt}] = true
		}
	}
	got := f.Findings()
	checked := 0
	for id, e := range s.Entries {
		if e.LastImported.IsZero() {
			if _, ok := got[id]; ok && e.Result.Status != probes.Passed {
				t.Errorf("%s: in Security Hub but the state never sent it", id)
			}
			continue
		}
		if refused[[2]string{id, asff.Stamp(e.LastImported)}] {
			continue // refused for good (logged and counted); the next refresh sends it again
		}
		raw, ok := got[id]
		if !ok {
			t.Errorf("%s: the state says sent, Security Hub never got it", id)
			continue
		}
		m := decodeFinding(t, raw)
		want := "ARCHIVED"
		if e.Active {
			want = "ACTIVE"
		}
		if m["RecordState"] != want || m["UpdatedAt"] != asff.Stamp(e.LastImported) {
			t.Errorf("%s: Security Hub has %v at %v, the state says %s at %s", id, m["RecordState"], m["UpdatedAt"], want, asff.Stamp(e.LastImported))
		}
		checked++
	}
	for id, raw := range got {
		if _, ok := s.Entries[id]; !ok && field(decodeFinding(t, raw), "RecordState") != "ARCHIVED" {
			t.Errorf("%s: the state forgot it but Security Hub still has it ACTIVE", id)
		}
	}
	return checked
}

// checkHubMatchesReport holds Security Hub to the last report, independently of the state:
// a FAILED result is ACTIVE with its newest reason; anything ever reported that now passed or
// vanished is ARCHIVED or was never active. Versions refused for good are skipped.
func checkHubMatchesReport(t *testing.T, f *awsfake.Server, l *ledger) {
	t.Helper()
	refusedID := map[string]bool{}
	for _, ff := range f.Failed() {
		if ff.ErrorCode == "InvalidInput" {
			refusedID[ff.Id] = true
		}
	}
	got := f.Findings()
	final := map[string]probes.Result{}
	for _, r := range l.lastReport.Results {
		final[r.ID] = r
	}
	for id := range l.seen {
		raw, ok := got[id]
		r, present := final[id]
		switch {
		case refusedID[id]:
		case present && r.Status == probes.Failed:
			if !ok {
				t.Errorf("%s: FAILED in the last report, not in Security Hub", id)
				continue
			}
			m := decodeFinding(t, raw)
			if m["RecordState"] != "ACTIVE" || field(m, "Compliance.Status") != "FAILED" || m["Description"] != r.Reason {
				t.Errorf("%s: Security Hub has %v/%v %q, the last report FAILED %q", id, m["RecordState"], field(m, "Compliance.Status"), m["Description"], r.Reason)
			}
		case ok:
			if s := field(decodeFinding(t, raw), "RecordState"); s != "ARCHIVED" {
				t.Errorf("%s: passed or gone in the last report, Security Hub has it %v", id, s)
			}
		}
	}
}

// duplicateVersions counts finding versions (id, UpdatedAt) Security Hub accepted more than
// once: harmless upserts, but only a lost answer or a kill may cause them.
func duplicateVersions(f *awsfake.Server) int {
	n := map[[2]string]int{}
	d := 0
	for _, a := range f.Accepted() {
		k := [2]string{a.Id, a.UpdatedAt}
		if n[k]++; n[k] > 1 {
			d++
		}
	}
	return d
}

// TestDeliveryChaos runs a dozen reports through every kind of delivery trouble: endpoints
// down for several runs (connection resets, 5xx, a closed port for separate runs), a
// throttling storm, partial FailedFindings, answers lost after the work was done, with a
// 1 MiB spool bound that the outage overruns. Afterwards every finding is in Security Hub once
// with its final state, every log event arrived or is counted as dropped, and the spool never
// outgrew its bound.
func TestDeliveryChaos(t *testing.T) {
	testenv.System(t)
	f := awsfake.New(t)
	useFake(t, f)
	cfg := testConfig(t)
	cfg.Spool.MaxMB = 1
	bound := int64(cfg.Spool.MaxMB) << 20
	daemon, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger()
	t0 := time.Now().Add(-3 * time.Hour)
	lost := 0
	type step struct {
		name string
		// setup runs before the report; it returns the reporter to use (a fresh one is a
		// separate `scan --report` run).
		setup   func() *Reporter
		wantErr bool
	}
	outage := func(fault awsfake.Fault) func() *Reporter {
		return func() *Reporter { f.Outage(fault); return daemon }
	}
	separate := func(endpoint string) func() *Reporter {
		return func() *Reporter {
			f.Outage(0)
			for k := range f.Env() {
				t.Setenv(k, endpoint)
			}
			r, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	steps := []step{
		{"healthy", outage(0), false},
		{"connection resets", outage(awsfake.Reset), true},
		{"connection resets, 2nd run", outage(awsfake.Reset), true},
		{"5xx", outage(awsfake.ServerError), true},
		{"throttling storm", outage(awsfake.Throttle), true},
		{"closed port, separate run", separate(testenv.Closed), true},
		{"closed port, 2nd separate run", separate(testenv.Closed), true},
		{"back, partial FailedFindings", func() *Reporter {
			r := separate(f.URL)()
			f.Inject(awsfake.OpBatchImportFindings, awsfake.PartialFail)
			return r
		}, true},
		{"answers lost", func() *Reporter {
			f.Inject(awsfake.OpBatchImportFindings, awsfake.Lost)
			f.Inject(awsfake.OpPutLogEvents, awsfake.Lost)
			lost += 2
			return daemon
		}, false},
		{"resets and throttling mixed", func() *Reporter {
			f.Inject(awsfake.OpBatchImportFindings, awsfake.Throttle, awsfake.Reset, awsfake.Throttle)
			f.Inject(awsfake.OpPutLogEvents, awsfake.Reset, awsfake.ServerError)
			return daemon
		}, false},
		{"healthy", outage(0), false},
	}
	for i, s := range steps {
		r := s.setup()
		// 150 results, ~3 KB of evidence each: ~500 KB of log events per report, so an
		// outage of a few reports overruns the 1 MiB bound.
		if err := l.spool(t, r, chaosReport(chaosHost, i, 150, 3000, t0.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatalf("%s: spool: %v", s.name, err)
		}
		fs, err := l.flush(r)
		if (err != nil) != s.wantErr {
			t.Errorf("%s: flush err %v, want error %v", s.name, err, s.wantErr)
		}
		size := l.measure(t, cfg.StateDir)
		t.Logf("%-30s spooled %+v; flushed accepted %v pending %v; spool %d bytes", s.name, l.stats[l.lastReport.ScannedAt.UnixMilli()], fs.Accepted, fs.Pending, size)
		if size > bound {
			t.Errorf("%s: spool %d bytes > bound %d", s.name, size, bound)
		}
	}
	// Whatever a retryable failure left is delivered by the next attempt.
	if fs, err := l.flush(daemon); err != nil || sum(fs.Pending) != 0 {
		t.Fatalf("final flush: %v, pending %v", err, fs.Pending)
	}
	if n, _, _ := daemon.spool.Size(); n != 0 {
		t.Errorf("%d spool files left", n)
	}
	if l.dropped == 0 {
		t.Error("the outage never overran the spool bound: the test did not test dropping")
	}
	if len(f.Failed()) == 0 || f.Throttled(awsfake.OpBatchImportFindings) == 0 {
		t.Error("no FailedFindings or throttling happened: the test did not test them")
	}
	l.reconcileLogs(t, f, chaosHost, lost)
	checked := checkHubMatchesState(t, f, cfg.StateDir)
	checkHubMatchesReport(t, f, l)
	if d := duplicateVersions(f); d == 0 || d > 100*1 {
		t.Errorf("%d finding versions imported twice; one lost answer of at most 100 findings makes 1 to 100", d)
	} else {
		t.Logf("%d findings match the state and the last report; %d versions imported twice (one lost answer); %d refused for good; spool max %d of %d bytes",
			checked, d, len(f.Failed()), l.maxSpool, bound)
	}
	if v := f.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
	awsfake.ValidateBatchImportFindings(t, f.Bodies())
	checkModes(t, cfg.StateDir)
}

// TestSummaryCountsEveryDrop: the run summary states every log event its report dropped to
// stay within the bound, also when the events' JSON escaping makes them larger in the spool
// than their messages (evidence full of <, > and &).
func TestSummaryCountsEveryDrop(t *testing.T) {
	testenv.System(t)
	f := awsfake.New(t)
	useFake(t, f)
	cfg := testConfig(t)
	cfg.Spool.MaxMB = 1
	cfg.SecurityHub.Enabled = false // log batches only, many of them under the bound
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", testenv.Closed)
	t.Setenv("AWS_ENDPOINT_URL_SECURITYHUB", testenv.Closed)
	r, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger()
	t0 := time.Now().Add(-time.Hour)
	for i := range 20 {
		rep := chaosReport(chaosHost, i, 10, 2500, t0.Add(time.Duration(i)*time.Minute))
		for k := range rep.Results {
			rep.Results[k].Evidence["markup"] = strings.Repeat(`<"\\>`, 100*(i%5+1))
		}
		if err := l.spool(t, r, rep); err != nil {
			t.Fatal(err)
		}
		if size := l.measure(t, cfg.StateDir); size > 1<<20 {
			t.Errorf("spool %d bytes > 1 MiB", size)
		}
	}
	for k, v := range f.Env() {
		t.Setenv(k, v)
	}
	r, _ = NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
	if _, err := l.flush(r); err != nil {
		t.Fatal(err)
	}
	if l.dropped == 0 {
		t.Fatal("nothing dropped: the test did not test")
	}
	l.reconcileLogs(t, f, chaosHost, 0)
}
