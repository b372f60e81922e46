package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/spool"
	"github.com/ec2sec/ec2sec/agent/state"
	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// TestReporterLifecycle drives the lifecycle through the strict fake: new findings, an
// unchanged rescan (nothing sent), a fix (archived as PASSED), a vanished resource (archived,
// its log event PASSED), a vanished secret (an exposure: still FAILED and ACTIVE, saying when
// it was last seen, refreshed daily), a partial scan (nothing of other probes archived) and
// the daily refresh.
func TestReporterLifecycle(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	cfg := testConfig(t)
	rep, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS(), Refresh: 23 * time.Hour}) // daily, to see refreshes within 30 h
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := testIdentity("i-0aaaaaaaaaaaaaaa1")
	t0 := time.Now().Add(-30 * time.Hour).Truncate(time.Second)
	v1 := probes.NewResult("imds-v1-enabled", probes.Failed, "", "IMDSv1 answered")
	hop := probes.NewResult("imds-hop-limit", probes.Failed, "", "hop limit 2")
	sec := probes.NewResult("secret-in-local-file", probes.Failed, "/etc/app.conf", "a secret").With("fingerprint", "fp1")
	sec.Probe = "credentials"
	perm := probes.NewResult("cred-file-permissions", probes.Failed, "/root/.aws/credentials", "mode 0644")
	perm.Probe = "credentials"
	run := func(at time.Time, ok []string, rs ...probes.Result) SpoolStats {
		t.Helper()
		st, err := rep.Spool(ctx, synthetic(id, at, ok, rs...))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rep.Flush(ctx); err != nil {
			t.Fatalf("%#v", err)
		}
		return st
	}
	all := []string{"imds", "credentials"}
	st := run(t0, all, v1, hop, sec, perm)
	if st.Findings != 4 || st.LogEvents != 9 {
		t.Fatalf("first scan: %+v, want 4 findings and 9 events (4 results, 4 failed checks' metrics, summary)", st)
	}
	st = run(t0.Add(time.Hour), all, v1, hop, sec, perm)
	// The failed checks' metrics come once per CheckMetricsEvery block: again only when the
	// rescan is in the next block.
	wantEvents := 1
	if checkMetricsDue(t0.Add(time.Hour), t0) {
		wantEvents = 5
	}
	if st.Findings != 0 || st.LogEvents != wantEvents {
		t.Fatalf("unchanged rescan: %+v, want only the metric events (%d: summary, and the 4 failed checks' in a new block)", st, wantEvents)
	}
	// Partial scan of imds only, where the hop limit is fixed: the secret finding of the
	// credentials probe must not be archived.
	hopOK := hop
	hopOK.Status, hopOK.Reason = probes.Passed, "hop limit 1"
	st = run(t0.Add(2*time.Hour), []string{"imds"}, v1, hopOK)
	if st.Findings != 1 || st.Archived != 1 {
		t.Fatalf("partial scan: %+v, want exactly the hop limit archived", st)
	}
	got := f.Findings()
	hopID := resultID(id, fillLike(id, hop))
	secID := resultID(id, fillLike(id, sec))
	if s := field(decodeFinding(t, got[hopID]), "RecordState"); s != "ARCHIVED" {
		t.Errorf("fixed finding RecordState = %v, want ARCHIVED", s)
	}
	if s := field(decodeFinding(t, got[hopID]), "Compliance.Status"); s != "PASSED" {
		t.Errorf("fixed finding Compliance.Status = %v, want PASSED", s)
	}
	if s := field(decodeFinding(t, got[secID]), "RecordState"); s != "ACTIVE" {
		t.Errorf("secret finding after a partial scan: RecordState = %v, want ACTIVE", s)
	}
	// The secret and the loose file are gone in a full scan: the file's finding is archived,
	// the secret's stays FAILED and ACTIVE (it may have been read), saying when it was last
	// seen (the scan at 1h: the partial scan did not look) and that it must be rotated.
	permID := resultID(id, fillLike(id, perm))
	st = run(t0.Add(3*time.Hour), all, v1, hopOK)
	if st.Archived != 1 || st.Exposures != 1 || st.Findings != 2 || field(decodeFinding(t, f.Findings()[permID]), "RecordState") != "ARCHIVED" {
		t.Fatalf("vanished file and secret: %+v", st)
	}
	lastSeen := t0.Add(time.Hour).UTC().Format(time.RFC3339)
	exposure := func(when string) {
		t.Helper()
		sf := decodeFinding(t, f.Findings()[secID])
		if field(sf, "RecordState") != "ACTIVE" || field(sf, "Compliance.Status") != "FAILED" || field(sf, "Workflow") != nil {
			t.Errorf("%s: vanished secret: RecordState %v, Compliance.Status %v, Workflow %v; want ACTIVE, FAILED, none", when, field(sf, "RecordState"), field(sf, "Compliance.Status"), field(sf, "Workflow"))
		}
		d, _ := field(sf, "Description").(string)
		if !strings.Contains(d, "last seen at "+lastSeen) || !strings.Contains(d, "rotate it") || !strings.Contains(d, "a secret") {
			t.Errorf("%s: vanished secret's description %q: want when it was last seen, rotate, and what was found", when, d)
		}
		if l := field(sf, "LastObservedAt"); l != asff.Stamp(t0.Add(time.Hour)) {
			t.Errorf("%s: vanished secret's LastObservedAt = %v, want when it was last seen", when, l)
		}
	}
	exposure("gone")
	// 23 h after the first import, the still-failing v1 finding is refreshed.
	v1ID := resultID(id, fillLike(id, v1))
	before := f.Imports()[v1ID]
	st = run(t0.Add(25*time.Hour), all, v1, hopOK)
	if st.Findings != 1 || f.Imports()[v1ID] != before+1 {
		t.Fatalf("refresh: %+v, imports %d -> %d", st, before, f.Imports()[v1ID])
	}
	if u := field(decodeFinding(t, f.Findings()[v1ID]), "UpdatedAt"); u != asff.Stamp(t0.Add(25*time.Hour)) {
		t.Errorf("refreshed UpdatedAt = %v", u)
	}
	if fa := field(decodeFinding(t, f.Findings()[v1ID]), "FirstObservedAt"); fa != asff.Stamp(t0) {
		t.Errorf("FirstObservedAt = %v, want the first scan's time", fa)
	}
	// A day after it was last sent, the exposure is refreshed, still FAILED and ACTIVE.
	secBefore := f.Imports()[secID]
	st = run(t0.Add(27*time.Hour), all, v1, hopOK)
	if st.Findings != 1 || st.Exposures != 1 || f.Imports()[secID] != secBefore+1 {
		t.Fatalf("exposure refresh: %+v, imports %d -> %d", st, secBefore, f.Imports()[secID])
	}
	exposure("refreshed")

	evs := f.Events("/ec2sec/findings", "i-0aaaaaaaaaaaaaaa1")
	var lifecycles []string
	statusOf := map[string]any{} // lifecycle -> the status its event carries
	summaries := 0
	for _, e := range evs {
		var m map[string]any
		if err := json.Unmarshal([]byte(e.Message), &m); err != nil {
			t.Fatalf("event is not JSON: %v", err)
		}
		switch m["type"] {
		case "result":
			lifecycles = append(lifecycles, m["lifecycle"].(string))
			statusOf[m["lifecycle"].(string)] = field(m, "result.status")
		case "run-summary":
			summaries++
			checkEMF(t, m)
		}
	}
	if summaries != 6 {
		t.Errorf("%d run summaries, want 6", summaries)
	}
	if len(lifecycles) == 7 {
		slices.Sort(lifecycles[5:]) // one scan's changes of two results, in id order
	}
	want := []string{"new", "new", "new", "new", "changed", "resolved", "unseen"}
	if !slices.Equal(lifecycles, want) {
		t.Errorf("result events %v, want %v", lifecycles, want)
	}
	// The event of a resolved result carries its new status; an exposure's stays FAILED.
	if statusOf["resolved"] != "PASSED" || statusOf["unseen"] != "FAILED" {
		t.Errorf("event statuses: resolved %v, unseen %v; want PASSED, FAILED", statusOf["resolved"], statusOf["unseen"])
	}
	if v := f.Violations(); len(v) > 0 {
		t.Errorf("limit violations: %v", v)
	}
	awsfake.ValidateBatchImportFindings(t, f.Bodies())
	for _, b := range f.AllBodies() {
		assertNoLeak(t, "request body", b)
	}
	assertDirNoLeak(t, cfg.StateDir)
	checkModes(t, cfg.StateDir)
}

func checkEMF(t *testing.T, m map[string]any) {
	t.Helper()
	aws, ok := m["_aws"].(map[string]any)
	if !ok {
		t.Fatalf("summary without _aws: %v", m)
	}
	if _, ok := aws["Timestamp"].(float64); !ok {
		t.Errorf("EMF Timestamp missing")
	}
	cms := aws["CloudWatchMetrics"].([]any)
	cm := cms[0].(map[string]any)
	if cm["Namespace"] != "ec2sec" {
		t.Errorf("namespace %v", cm["Namespace"])
	}
	for _, d := range cm["Dimensions"].([]any) {
		for _, name := range d.([]any) {
			if _, ok := m[name.(string)].(string); !ok {
				t.Errorf("dimension %v has no string value at the root", name)
			}
		}
	}
	for _, mt := range cm["Metrics"].([]any) {
		name := mt.(map[string]any)["Name"].(string)
		if _, ok := m[name].(float64); !ok {
			t.Errorf("metric %s has no number at the root", name)
		}
	}
	for _, k := range []string{"FailedCritical", "FailedHigh", "Passed", "Failed", "DurationMs", "agent_version"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary lacks %s", k)
		}
	}
}

func checkModes(t *testing.T, dir string) {
	t.Helper()
	sp := filepath.Join(dir, "spool")
	fi, err := os.Stat(sp)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("spool dir mode %v, want 0700", fi.Mode().Perm())
	}
	for _, p := range []string{filepath.Join(dir, "state.json")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
}

// TestReporterEndpointsDown: with every endpoint refusing connections the report is spooled
// and kept; once they are back the next flush delivers it, oldest first.
func TestReporterEndpointsDown(t *testing.T) {
	cfg := testConfig(t)
	rep, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := testIdentity("i-0bbbbbbbbbbbbbbb2")
	t0 := time.Now().Add(-time.Hour)
	// testenv points every endpoint at a closed loopback port.
	for i := range 3 {
		r := probes.NewResult("imds-v1-enabled", probes.Failed, "", "answered "+string(rune('a'+i)))
		if _, err := rep.Spool(ctx, synthetic(id, t0.Add(time.Duration(i)*time.Minute), []string{"imds"}, r)); err != nil {
			t.Fatal(err)
		}
		if _, err := rep.Flush(ctx); err == nil {
			t.Fatal("flush to a closed port succeeded")
		}
	}
	logs, _ := rep.spool.Pending(spool.Logs)
	finds, _ := rep.spool.Pending(spool.Findings)
	// Three log batches; the finding's newer versions superseded the older ones.
	if len(logs) != 3 || len(finds) != 1 {
		t.Fatalf("spooled %d log and %d finding batches, want 3 and 1", len(logs), len(finds))
	}
	f := awsfake.New(t)
	useFake(t, f)
	rep2, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()}) // the next run
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep2.Spool(ctx, synthetic(id, t0.Add(10*time.Minute), []string{"imds"}, probes.NewResult("imds-v1-enabled", probes.Failed, "", "answered z"))); err != nil {
		t.Fatal(err)
	}
	st, err := rep2.Flush(ctx)
	if err != nil {
		t.Fatalf("flush: %v (%+v)", err, st)
	}
	if n, _, _ := rep2.spool.Size(); n != 0 {
		t.Errorf("%d spool files left after delivery", n)
	}
	evs := f.Events("/ec2sec/findings", "i-0bbbbbbbbbbbbbbb2")
	var reasons []string
	for _, e := range evs {
		if strings.Contains(e.Message, `"type":"result"`) {
			var m struct{ Result probes.Result }
			json.Unmarshal([]byte(e.Message), &m)
			reasons = append(reasons, m.Result.Reason)
		}
	}
	if want := []string{"answered a", "answered b", "answered c", "answered z"}; !slices.Equal(reasons, want) {
		t.Errorf("delivered %v, want %v in order", reasons, want)
	}
	fs := f.Findings()
	if len(fs) != 1 {
		t.Fatalf("%d findings, want 1 (one id, upserted)", len(fs))
	}
	for _, raw := range fs {
		if d := field(decodeFinding(t, raw), "Description"); d != "answered z" {
			t.Errorf("latest finding says %v, want the newest version", d)
		}
	}
	awsfake.ValidateBatchImportFindings(t, f.Bodies())
}

// TestReporterOffEC2: no account or region, so no Security Hub: said and counted; CloudWatch
// Logs gets the stream named after the hostname.
func TestReporterOffEC2(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	cfg := testConfig(t)
	rep, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	id := identityOff("buildhost")
	st, err := rep.Spool(context.Background(), synthetic(id, time.Now(), []string{"imds"}, probes.NewResult("imds-v1-enabled", probes.NotAvailable, "", "not on EC2"), probes.NewResult("imds-hop-limit", probes.Failed, "", "x")))
	if err != nil {
		t.Fatal(err)
	}
	if st.HubSkipped != 1 || st.HubIssue == "" || st.Findings != 0 {
		t.Errorf("off EC2: %+v, want 1 finding skipped with a reason", st)
	}
	if _, err := rep.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.Events("/ec2sec/findings", "buildhost")); n != 4 {
		t.Errorf("%d events in stream buildhost, want 4 (2 results, the failed check's metric, summary)", n)
	}
	if f.Calls(awsfake.OpBatchImportFindings) != 0 {
		t.Error("security hub called off EC2")
	}
	var sum map[string]any
	evs := f.Events("/ec2sec/findings", "buildhost")
	json.Unmarshal([]byte(evs[len(evs)-1].Message), &sum)
	if sum["FindingsSkipped"] != float64(1) {
		t.Errorf("summary FindingsSkipped = %v", sum["FindingsSkipped"])
	}
	_ = testenv.Closed
}

// TestReporterSpoolBound: with the endpoints down past the spool bound, the oldest log events
// are dropped and counted in the run summary; no finding is dropped.
func TestReporterSpoolBound(t *testing.T) {
	cfg := testConfig(t)
	cfg.Spool.MaxMB = 1
	rep, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour)
	var dropped int
	for i := range 5 {
		// Every result changes every scan: ~450 KB of events and findings per scan.
		st, err := rep.Spool(ctx, killReport(i*4+1, t0.Add(time.Duration(i)*time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		dropped += st.DroppedEvents
	}
	if dropped == 0 {
		t.Fatal("nothing dropped past a 1 MiB bound")
	}
	// No finding is dropped: the queue holds the newest version of every id the last scans
	// changed, once (older versions are superseded, since imports are upserts by id).
	finds, _ := rep.spool.Pending(spool.Findings)
	versions := map[string]int{}
	for _, name := range finds {
		b, _ := rep.spool.Read(name)
		for _, it := range b.Items {
			var f struct{ Id, UpdatedAt string }
			json.Unmarshal(it, &f)
			versions[f.Id]++
		}
	}
	s, _ := state.Load(filepath.Join(cfg.StateDir, "state.json"))
	for id, e := range s.Entries {
		if !e.LastImported.IsZero() && versions[id] != 1 {
			t.Errorf("%s: %d pending versions, want 1", id, versions[id])
		}
	}
	f := awsfake.New(t)
	useFake(t, f)
	if _, err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	reported := 0
	for _, e := range f.Events("/ec2sec/findings", "i-0kkkkkkkkkkkkkkk9") {
		var m map[string]any
		json.Unmarshal([]byte(e.Message), &m)
		if m["type"] == "run-summary" {
			reported += int(m["DroppedEvents"].(float64))
		}
	}
	if reported == 0 || reported > dropped {
		t.Errorf("summaries delivered report %d dropped events; %d were dropped", reported, dropped)
	}
}

// TestReporterExposureOutage: Security Hub is down while a secret appears, changes and is
// removed. Its first FAILED version is never superseded: once Security Hub is back, the
// secret arrives as it was first seen, then its newest version (still FAILED and ACTIVE, no
// longer seen); the version in between is superseded, so at most two per id wait. A fixed
// configuration's older version is superseded by its archive as before.
func TestReporterExposureOutage(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	cfg := testConfig(t)
	rep, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := testIdentity("i-0aaaaaaaaaaaaaaa3")
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	sec := probes.NewResult("secret-in-local-file", probes.Failed, "/etc/app.conf", "a secret at line 3").With("fingerprint", "fp1")
	sec.Probe = "credentials"
	sec2 := sec
	sec2.Reason = "a secret at line 4"
	perm := probes.NewResult("cred-file-permissions", probes.Failed, "/root/.aws/credentials", "mode 0644")
	perm.Probe = "credentials"
	all := []string{"credentials"}
	f.Outage(awsfake.Reset)
	var superseded int
	for i, rs := range [][]probes.Result{{sec, perm}, {sec2, perm}, {}} {
		st, err := rep.Spool(ctx, synthetic(id, t0.Add(time.Duration(i)*30*time.Minute), all, rs...))
		if err != nil {
			t.Fatal(err)
		}
		superseded += st.Superseded
		if _, err := rep.Flush(ctx); err == nil {
			t.Fatal("flush during the outage succeeded")
		}
	}
	// sec's second version and perm's first; perm's second was unchanged, not spooled.
	if superseded != 2 {
		t.Errorf("superseded %d versions, want 2", superseded)
	}
	f.Outage(0)
	if _, err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	secID, permID := resultID(id, fillLike(id, sec)), resultID(id, fillLike(id, perm))
	var order []string
	for _, a := range f.Accepted() {
		if a.Id == secID {
			order = append(order, a.UpdatedAt+" "+a.RecordState)
		}
	}
	want := []string{asff.Stamp(t0) + " ACTIVE", asff.Stamp(t0.Add(time.Hour)) + " ACTIVE"}
	if !slices.Equal(order, want) {
		t.Fatalf("secret versions delivered %v, want %v (as first seen, then no longer seen)", order, want)
	}
	var first map[string]any
	for _, b := range f.Bodies() {
		var in struct{ Findings []map[string]any }
		json.Unmarshal(b, &in)
		for _, fd := range in.Findings {
			if fd["Id"] == secID && first == nil {
				first = fd
			}
		}
	}
	if field(first, "Compliance.Status") != "FAILED" || field(first, "Description") != "a secret at line 3" {
		t.Errorf("first secret version delivered: %v, %v", field(first, "Compliance.Status"), field(first, "Description"))
	}
	last := decodeFinding(t, f.Findings()[secID])
	if d, _ := field(last, "Description").(string); field(last, "Compliance.Status") != "FAILED" || field(last, "RecordState") != "ACTIVE" ||
		!strings.Contains(d, "last seen at "+t0.Add(30*time.Minute).UTC().Format(time.RFC3339)) || !strings.Contains(d, "a secret at line 4") {
		t.Errorf("secret in Security Hub: %v %v %q", field(last, "Compliance.Status"), field(last, "RecordState"), d)
	}
	if p := decodeFinding(t, f.Findings()[permID]); field(p, "RecordState") != "ARCHIVED" || f.Imports()[permID] != 1 {
		t.Errorf("fixed configuration: %v, imported %d times, want ARCHIVED once", field(p, "RecordState"), f.Imports()[permID])
	}
	awsfake.ValidateBatchImportFindings(t, f.Bodies())
	for _, b := range f.AllBodies() {
		assertNoLeak(t, "request body", b)
	}
}

// fillLike gives a test result the resource Scan would on host id (its ARN when empty).
func fillLike(id metadata.Identity, r probes.Result) probes.Result {
	if r.Resource == "" {
		r.Resource = hostResource(id)
	}
	return r
}

// TestReporterExposureBound: past ReporterOptions.MaxExposures, the exposure last seen
// longest ago is sent a last time, still FAILED and ACTIVE, saying the agent stops refreshing
// it, and the run summary counts it: never dropped silently.
func TestReporterExposureBound(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	cfg := testConfig(t)
	rep, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS(), MaxExposures: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := testIdentity("i-0aaaaaaaaaaaaaaa4")
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	a := probes.NewResult("cred-long-lived-key", probes.Failed, "/home/a/.aws/credentials", "key a").With("fingerprint", "fa")
	b := probes.NewResult("cred-long-lived-key", probes.Failed, "/home/b/.aws/credentials", "key b").With("fingerprint", "fb")
	a.Probe, b.Probe = "credentials", "credentials"
	all := []string{"credentials"}
	for i, rs := range [][]probes.Result{{a, b}, {b}, {}} {
		st, err := rep.Spool(ctx, synthetic(id, t0.Add(time.Duration(i)*time.Hour), all, rs...))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rep.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 2 && (st.Exposures != 2 || st.Untracked != 1 || st.Archived != 0) {
			t.Errorf("last report: %+v, want 2 exposures, 1 untracked, nothing archived", st)
		}
	}
	for _, r := range []probes.Result{a, b} {
		fd := decodeFinding(t, f.Findings()[resultID(id, r)])
		d, _ := field(fd, "Description").(string)
		if field(fd, "RecordState") != "ACTIVE" || field(fd, "Compliance.Status") != "FAILED" {
			t.Errorf("%s: %v %v, want ACTIVE FAILED", r.Reason, field(fd, "RecordState"), field(fd, "Compliance.Status"))
		}
		if untracked := strings.Contains(d, "stops refreshing"); untracked != (r.Reason == "key a") {
			t.Errorf("%s: description %q: only the one last seen longest ago (key a) is untracked", r.Reason, d)
		}
	}
	evs := f.Events("/ec2sec/findings", "i-0aaaaaaaaaaaaaaa4")
	var sum map[string]any
	for _, e := range evs {
		var m map[string]any
		json.Unmarshal([]byte(e.Message), &m)
		if m["type"] == "run-summary" {
			sum = m
		}
	}
	if sum["ExposuresUntracked"] != float64(1) || sum["ExposuresUnseen"] != float64(2) {
		t.Errorf("last run summary: ExposuresUntracked %v, ExposuresUnseen %v; want 1, 2", sum["ExposuresUntracked"], sum["ExposuresUnseen"])
	}
	awsfake.ValidateBatchImportFindings(t, f.Bodies())
}
