package state

import (
	"path/filepath"
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
		return kinds(s.Apply(Scan{Host: "i-1", ScannedAt: t0.Add(at), Results: rs, ProbesOK: ok}, Options{}))
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
	// Refresh of the still-warning 3 after 23 h, not before.
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
