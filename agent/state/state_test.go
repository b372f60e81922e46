package state

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func res(id, check, probe string, st probes.Status) probes.Result {
	r := probes.NewResult(check, st, "res-"+id, "reason "+string(st))
	r.ID, r.Probe = id, probe
	return r
}

func kinds(cs []Change) map[string]Change {
	m := map[string]Change{}
	for _, c := range cs {
		m[c.Result.ID] = c
	}
	return m
}

func TestApply(t *testing.T) {
	s := &State{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := map[string]bool{"a": true, "b": true}
	sc := func(at time.Duration, ok map[string]bool, rs ...probes.Result) map[string]Change {
		return kinds(s.Apply(Scan{Host: "i-1", ScannedAt: t0.Add(at), Results: rs, ProbesOK: ok}, Options{Refresh: 23 * time.Hour}))
	}
	c := sc(0, ok, res("1", "c1", "a", probes.Failed), res("2", "c2", "a", probes.Passed), res("3", "c3", "b", probes.Warning), res("4", "c4", "b", probes.Failed))
	if len(c) != 4 || !c["1"].Import || c["2"].Import || !c["3"].Import || c["1"].Lifecycle != New {
		t.Fatalf("first: %+v", c)
	}
	// Unchanged: nothing.
	if c := sc(time.Hour, ok, res("1", "c1", "a", probes.Failed), res("2", "c2", "a", probes.Passed), res("3", "c3", "b", probes.Warning), res("4", "c4", "b", probes.Failed)); len(c) != 0 {
		t.Fatalf("unchanged: %+v", c)
	}
	// 1 fixed (PASSED: archive), 3 cannot be looked at (NOT_AVAILABLE: kept active, logged),
	// 4 gone while its check is NOT_AVAILABLE elsewhere -> kept.
	c = sc(2*time.Hour, ok, res("1", "c1", "a", probes.Passed), res("2", "c2", "a", probes.Passed), res("3", "c3", "b", probes.NotAvailable), res("5", "c4", "b", probes.NotAvailable))
	if !c["1"].Archive || !c["1"].Import || c["1"].Lifecycle != Changed {
		t.Errorf("fixed: %+v", c["1"])
	}
	if c["3"].Import || !c["3"].Log {
		t.Errorf("not available: %+v", c["3"])
	}
	if _, ok := c["4"]; ok {
		t.Errorf("finding archived while its check could not look: %+v", c["4"])
	}
	if !s.Entries["3"].Active || s.Entries["1"].Active {
		t.Errorf("active flags: 3=%v 1=%v", s.Entries["3"].Active, s.Entries["1"].Active)
	}
	// Partial scan (only a): nothing of b resolves.
	c = sc(3*time.Hour, map[string]bool{"a": true}, res("1", "c1", "a", probes.Passed), res("2", "c2", "a", probes.Passed))
	if len(c) != 0 {
		t.Errorf("partial scan changed %+v", c)
	}
	// Full scan where 4 is gone and its check looked: resolved and archived.
	c = sc(4*time.Hour, ok, res("1", "c1", "a", probes.Passed), res("2", "c2", "a", probes.Passed), res("3", "c3", "b", probes.Warning))
	if c["4"].Lifecycle != Resolved || !c["4"].Archive {
		t.Errorf("gone: %+v", c["4"])
	}
	if c["3"].Lifecycle != Changed || !c["3"].Import || c["3"].Archive {
		t.Errorf("3 back to WARNING: %+v", c["3"])
	}
	if _, ok := s.Entries["4"]; ok {
		t.Error("resolved entry kept")
	}
	// Refresh of the still-warning 3 after the refresh period (23 h here), not before.
	if c := sc(20*time.Hour, ok, res("1", "c1", "a", probes.Passed), res("2", "c2", "a", probes.Passed), res("3", "c3", "b", probes.Warning)); len(c) != 0 {
		t.Errorf("early refresh: %+v", c)
	}
	c = sc(27*time.Hour, ok, res("1", "c1", "a", probes.Passed), res("2", "c2", "a", probes.Passed), res("3", "c3", "b", probes.Warning))
	if c["3"].Lifecycle != Refresh || !c["3"].Import || c["3"].Log {
		t.Errorf("refresh: %+v", c["3"])
	}
	if !c["3"].FirstObserved.Equal(t0) {
		t.Errorf("first observed %v", c["3"].FirstObserved)
	}
	// Save and load round trip.
	p := filepath.Join(t.TempDir(), "state.json")
	if err := s.Save(p); err != nil {
		t.Fatal(err)
	}
	l, err := Load(p)
	if err != nil || len(l.Entries) != len(s.Entries) || l.Host != "i-1" {
		t.Fatalf("load: %v %+v", err, l)
	}
	// Another host: a fresh memory, nothing archived.
	c = kinds(l.Apply(Scan{Host: "i-2", ScannedAt: t0.Add(30 * time.Hour), Results: []probes.Result{res("9", "c1", "a", probes.Failed)}, ProbesOK: ok}, Options{}))
	if len(c) != 1 || c["9"].Lifecycle != New {
		t.Errorf("new host: %+v", c)
	}
}

func TestLoadMissing(t *testing.T) {
	s, err := Load(filepath.Join(t.TempDir(), "none.json"))
	if err != nil || len(s.Entries) != 0 {
		t.Fatalf("%v %+v", err, s)
	}
}

// TestNoImport: while findings cannot be sent nothing is marked imported, so they are sent
// once Security Hub can take them.
func TestNoImport(t *testing.T) {
	s := &State{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rs := []probes.Result{res("1", "c1", "a", probes.Failed)}
	s.Apply(Scan{Host: "i-1", ScannedAt: t0, Results: rs, ProbesOK: map[string]bool{"a": true}}, Options{NoImport: true})
	if e := s.Entries["1"]; e.Active || !e.LastImported.IsZero() {
		t.Fatalf("marked imported while it could not be: %+v", e)
	}
	c := kinds(s.Apply(Scan{Host: "i-1", ScannedAt: t0.Add(time.Hour), Results: rs, ProbesOK: map[string]bool{"a": true}}, Options{}))
	if !c["1"].Import || !s.Entries["1"].Active {
		t.Errorf("not sent once possible: %+v", c["1"])
	}
}

// secret is an exposure: a FAILED result of a secret check.
func secret(id string) probes.Result {
	r := res(id, "userdata-secret", "userdata", probes.Failed)
	r.Reason = "the user data holds an AWS secret key at line 3"
	return r
}

// TestExposureStaysActive: a secret the scan no longer sees is re-imported still FAILED and
// ACTIVE, saying when it was last seen and to rotate it; never archived, refreshed
// (even when its probe does not run), news again when it is seen again.
func TestExposureStaysActive(t *testing.T) {
	s := &State{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := map[string]bool{"userdata": true, "a": true}
	sc := func(at time.Duration, ok map[string]bool, rs ...probes.Result) map[string]Change {
		return kinds(s.Apply(Scan{Host: "i-1", ScannedAt: t0.Add(at), Results: rs, ProbesOK: ok}, Options{Refresh: 23 * time.Hour}))
	}
	if c := sc(0, ok, secret("s")); c["s"].Lifecycle != New || !c["s"].Import || c["s"].Exposure {
		t.Fatalf("seen: %+v", c["s"])
	}
	sc(time.Hour, ok, secret("s")) // last seen at 1h
	// Its probe did not run: not knowing is not gone.
	if c := sc(2*time.Hour, map[string]bool{"a": true}); len(c) != 0 {
		t.Fatalf("partial scan: %+v", c)
	}
	// Its check could not look: not gone either.
	if c := sc(2*time.Hour, ok, res("na", "userdata-secret", "userdata", probes.NotAvailable)); c["s"].Lifecycle != "" {
		t.Fatalf("check not available: %+v", c["s"])
	}
	c := sc(3*time.Hour, ok, res("p", "userdata-secret", "userdata", probes.Passed))["s"]
	if c.Lifecycle != Unseen || !c.Import || c.Archive || !c.Log || !c.Exposure || c.Result.Status != probes.Failed {
		t.Fatalf("gone: %+v", c)
	}
	lastSeen := t0.Add(time.Hour).Format(time.RFC3339)
	for _, want := range []string{"since the scan at " + t0.Add(3*time.Hour).Format(time.RFC3339), "last seen at " + lastSeen, "rotate it", "Security Hub", "AWS secret key at line 3"} {
		if !strings.Contains(c.Result.Reason, want) {
			t.Errorf("gone: reason %q lacks %q", c.Result.Reason, want)
		}
	}
	if c.Result.Evidence["last_seen"] != lastSeen || !c.LastObserved.Equal(t0.Add(time.Hour)) || !c.FirstObserved.Equal(t0) {
		t.Errorf("gone: evidence %v, observed %v..%v", c.Result.Evidence, c.FirstObserved, c.LastObserved)
	}
	if e := s.Entries["s"]; e == nil || !e.Active || e.Result.Reason != "the user data holds an AWS secret key at line 3" {
		t.Fatalf("entry after gone: %+v", e)
	}
	// Nothing more until a day after the last import, then a refresh, probe run or not.
	if c := sc(20*time.Hour, ok); len(c) != 0 {
		t.Fatalf("early: %+v", c)
	}
	c = sc(27*time.Hour, map[string]bool{})["s"]
	if c.Lifecycle != Refresh || !c.Import || c.Archive || c.Log || !c.Exposure || c.Result.Status != probes.Failed ||
		!strings.Contains(c.Result.Reason, "last seen at "+lastSeen) || !strings.Contains(c.Result.Reason, "since the scan at "+t0.Add(3*time.Hour).Format(time.RFC3339)) {
		t.Fatalf("refresh: %+v", c)
	}
	// The same id no longer a secret (a probe's PASSED) does not fix the exposure.
	p := secret("s")
	p.Status = probes.Passed
	if c := sc(28*time.Hour, ok, p); len(c) != 0 || !s.Entries["s"].Active || s.Entries["s"].Result.Status != probes.Failed {
		t.Fatalf("same id passed: %+v %+v", c, s.Entries["s"])
	}
	// Seen again: news (logged), the usual text.
	c = sc(29*time.Hour, ok, secret("s"))["s"]
	if c.Lifecycle != Changed || !c.Log || !c.Import || c.Exposure || c.Result.Reason != "the user data holds an AWS secret key at line 3" || !s.Entries["s"].Unseen.IsZero() {
		t.Fatalf("seen again: %+v", c)
	}
	// Gone again, through a save and load.
	path := filepath.Join(t.TempDir(), "state.json")
	sc(30*time.Hour, ok)
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path)
	if err != nil || l.Entries["s"] == nil || !l.Entries["s"].Unseen.Equal(t0.Add(30*time.Hour)) {
		t.Fatalf("load: %v %+v", err, l.Entries["s"])
	}
}

// TestResolvedCarriesNewStatus: what is sent for a result no longer reported says PASSED and
// why, so its CloudWatch event carries the new status; Security Hub gets it archived. A secret
// check's WARNING (a limit cut the look) is no exposure and resolves as usual.
func TestResolvedCarriesNewStatus(t *testing.T) {
	s := &State{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := map[string]bool{"a": true, "userdata": true}
	w := res("w", "userdata-secret", "userdata", probes.Warning)
	s.Apply(Scan{Host: "i-1", ScannedAt: t0, Results: []probes.Result{res("1", "c1", "a", probes.Failed), w}, ProbesOK: ok}, Options{})
	c := kinds(s.Apply(Scan{Host: "i-1", ScannedAt: t0.Add(time.Hour), ProbesOK: ok}, Options{}))
	for _, id := range []string{"1", "w"} {
		r := c[id]
		if r.Lifecycle != Resolved || !r.Archive || r.Exposure || r.Result.Status != probes.Passed || !strings.Contains(r.Result.Reason, "No longer found by the scan at 2026-01-01T01:00:00Z") {
			t.Errorf("%s resolved: %+v", id, r)
		}
	}
	if len(s.Entries) != 0 {
		t.Errorf("resolved entries kept: %v", s.Entries)
	}
}

// TestExposureBound: past MaxExposures exposures no longer seen, the ones last seen longest
// ago are sent a last time (Untracked, still FAILED and ACTIVE, saying so) and forgotten;
// never silently, never archived.
func TestExposureBound(t *testing.T) {
	s := &State{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := map[string]bool{"userdata": true}
	o := Options{MaxExposures: 2, Refresh: 23 * time.Hour}
	s.Apply(Scan{Host: "i-1", ScannedAt: t0, Results: []probes.Result{secret("a"), secret("b")}, ProbesOK: ok}, o)
	s.Apply(Scan{Host: "i-1", ScannedAt: t0.Add(time.Hour), Results: []probes.Result{secret("b"), secret("c")}, ProbesOK: ok}, o)
	// a gone (last seen at 0), then b and c (last seen at 1h): three exposures, two kept.
	c := kinds(s.Apply(Scan{Host: "i-1", ScannedAt: t0.Add(2 * time.Hour), ProbesOK: ok}, o))
	if len(c) != 3 {
		t.Fatalf("changes: %+v", c)
	}
	a := c["a"]
	if a.Lifecycle != Untracked || !a.Log || !a.Import || a.Archive || !a.Exposure || a.Result.Status != probes.Failed ||
		!strings.Contains(a.Result.Reason, "stops refreshing") || !strings.Contains(a.Result.Reason, "last seen at 2026-01-01T00:00:00Z") {
		t.Errorf("untracked: %+v", a)
	}
	if c["b"].Lifecycle != Unseen || c["c"].Lifecycle != Unseen {
		t.Errorf("kept: %+v %+v", c["b"], c["c"])
	}
	if len(s.Entries) != 2 || s.Entries["a"] != nil {
		t.Errorf("entries: %v", s.Entries)
	}
	// A later untracking takes the place of that exposure's refresh: one change per id.
	s.Apply(Scan{Host: "i-1", ScannedAt: t0.Add(3 * time.Hour), Results: []probes.Result{secret("d")}, ProbesOK: ok}, o)
	cs := s.Apply(Scan{Host: "i-1", ScannedAt: t0.Add(30 * time.Hour), ProbesOK: ok}, o)
	ids := map[string]int{}
	for _, ch := range cs {
		ids[ch.Result.ID]++
	}
	if k := kinds(cs); len(cs) != 3 || ids["b"] != 1 || k["b"].Lifecycle != Untracked || k["c"].Lifecycle != Refresh || k["d"].Lifecycle != Unseen {
		t.Errorf("second bound: %+v", cs)
	}
}

// TestDefaultRefresh: with the default, scanning hourly, a still-failing finding and an
// exposure are refreshed weekly (at 167 h), not daily; Security Hub keeps findings 90 days.
func TestDefaultRefresh(t *testing.T) {
	if DefaultRefresh >= 7*24*time.Hour || DefaultRefresh < 6*24*time.Hour {
		t.Fatalf("DefaultRefresh %v, want just under a week", DefaultRefresh)
	}
	s := &State{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := map[string]bool{"a": true, "userdata": true}
	s.Apply(Scan{Host: "i-1", ScannedAt: t0, Results: []probes.Result{res("1", "c1", "a", probes.Failed), secret("s")}, ProbesOK: ok}, Options{})
	s.Apply(Scan{Host: "i-1", ScannedAt: t0.Add(time.Hour), Results: []probes.Result{res("1", "c1", "a", probes.Failed)}, ProbesOK: ok}, Options{}) // s no longer seen
	for h := 2; h <= 168; h++ {
		c := kinds(s.Apply(Scan{Host: "i-1", ScannedAt: t0.Add(time.Duration(h) * time.Hour), Results: []probes.Result{res("1", "c1", "a", probes.Failed)}, ProbesOK: ok}, Options{}))
		switch h {
		case 167:
			if len(c) != 1 || c["1"].Lifecycle != Refresh {
				t.Errorf("at %d h: %+v, want the finding refreshed", h, c)
			}
		case 168:
			if len(c) != 1 || c["s"].Lifecycle != Refresh || !c["s"].Exposure {
				t.Errorf("at %d h: %+v, want the exposure refreshed", h, c)
			}
		default:
			if len(c) != 0 {
				t.Errorf("at %d h: %+v, want nothing before a week", h, c)
			}
		}
	}
}
