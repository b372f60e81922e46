package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/state"
	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/probes"
)

// The state may forget a finding only once Security Hub has, or will get, its archive. These
// tests hold the exact sequences TestKill9 met only now and then.

// dieAt is a pause hook that ends the reporter's goroutine at point, as SIGKILL ends the
// process there: nothing after it runs (deferred calls do, releasing the file lock as the
// kernel would). Run the call with inGoroutine; *died says whether it got there.
func dieAt(point string, died *bool) func(string) {
	return func(p string) {
		if p == point {
			*died = true
			runtime.Goexit()
		}
	}
}

// inGoroutine runs fn in a goroutine of its own and waits for it, so fn may Goexit.
func inGoroutine(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// TestRefusedArchiveSentAgain: Security Hub refuses an archived finding for good (an
// InvalidInput FailedFinding) after the state stopped counting it as active. Before, the
// refused archive simply left the spool; once the result was gone the state forgot it, and
// Security Hub kept the ACTIVE version for good.
func TestRefusedArchiveSentAgain(t *testing.T) {
	id := testIdentity("i-0fffffffffffffff1")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	w := probes.NewResult("imds-v1-enabled", probes.Failed, "/etc/w", "w fails")
	x := probes.NewResult("imds-v1-enabled", probes.Failed, "/etc/x", "x fails")
	w2 := w
	w2.Reason = "w fails differently" // changed: imported first in the next batch
	x2 := x
	x2.Status, x2.Reason = probes.Passed, "x fixed"
	xID := resultID(id, fillLike(id, x))
	for _, tc := range []struct {
		name string
		// second is the report whose batch is [w2 (ACTIVE), x's archive]; third comes after.
		second, third []probes.Result
		// die: the reporter sending the new version is killed at this point.
		die string
	}{
		{name: "fixed, then gone", second: []probes.Result{w2, x2}, third: []probes.Result{w2}},
		{name: "gone at once", second: []probes.Result{w2}, third: []probes.Result{w2}},
		{name: "gone at once, killed before the new version is committed", second: []probes.Result{w2}, third: []probes.Result{w2}, die: "respooled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := awsfake.New(t)
			useFake(t, f)
			cfg := testConfig(t)
			ctx := context.Background()
			r, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Spool(ctx, synthetic(id, t0, []string{"imds"}, w, x)); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Spool(ctx, synthetic(id, t0.Add(time.Minute), []string{"imds"}, tc.second...)); err != nil {
				t.Fatal(err)
			}
			// The first finding of the call fails with a retryable code, the second (x's
			// archive) with InvalidInput: refused for good.
			f.Inject(awsfake.OpBatchImportFindings, awsfake.PartialFail)
			if tc.die != "" {
				died := false
				k, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS(), pause: dieAt(tc.die, &died)})
				if err != nil {
					t.Fatal(err)
				}
				inGoroutine(func() { k.Flush(ctx) })
				if !died {
					t.Fatalf("the reporter never reached %q", tc.die)
				}
			} else if _, err := r.Flush(ctx); err == nil {
				t.Fatal("flush with a retryable failure said nothing")
			}
			refused := false
			for _, ff := range f.Failed() {
				if ff.Id == xID && ff.ErrorCode == "InvalidInput" && ff.UpdatedAt == asff.Stamp(t0.Add(time.Minute)) {
					refused = true
				}
			}
			if !refused {
				t.Fatalf("x's archive was not the finding refused: %+v", f.Failed())
			}
			// Later runs: a report where x is gone (the state forgets it), and a fresh process
			// that only delivers.
			r, err = NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Spool(ctx, synthetic(id, t0.Add(2*time.Minute), []string{"imds"}, tc.third...)); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if got := field(decodeFinding(t, f.Findings()[xID]), "RecordState"); got != "ARCHIVED" {
				t.Errorf("x in Security Hub is %v, want ARCHIVED", got)
			}
			checkHubMatchesState(t, f, cfg.StateDir)
			if entries, _ := os.ReadDir(filepath.Join(cfg.StateDir, "spool")); len(entries) != 0 {
				t.Errorf("spool not empty: %v", entries)
			}
			awsfake.ValidateBatchImportFindings(t, f.Bodies())
		})
	}
}

// TestFirstReportKilled: the very first report is killed between writing its batches and
// saving the state. With no state file there was no commit point, so its batches were kept
// and delivered, while the next report diffed from an empty state: a finding only the killed
// report had went to Security Hub ACTIVE and no state ever knew it, so nothing archived it.
func TestFirstReportKilled(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	cfg := testConfig(t)
	ctx := context.Background()
	id := testIdentity("i-0fffffffffffffff2")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	x := probes.NewResult("imds-v1-enabled", probes.Failed, "/etc/x", "x fails")
	y := probes.NewResult("imds-v1-enabled", probes.Failed, "/etc/y", "y fails")
	died := false
	k, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS(), pause: dieAt("spooled", &died)})
	if err != nil {
		t.Fatal(err)
	}
	inGoroutine(func() { k.Spool(ctx, synthetic(id, t0, []string{"imds"}, x, y)) })
	if !died {
		t.Fatal("the first report never reached the point between its batches and its state")
	}
	// A fresh process: first a delivery before any scan (as the daemon's delivery worker
	// may run), then a report where x is gone, then its delivery.
	r, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Spool(ctx, synthetic(id, t0.Add(time.Minute), []string{"imds"}, y)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if checkHubMatchesState(t, f, cfg.StateDir) != 1 {
		t.Error("y was not delivered and checked")
	}
	if entries, _ := os.ReadDir(filepath.Join(cfg.StateDir, "spool")); len(entries) != 0 {
		t.Errorf("spool not empty: %v", entries)
	}
}

// TestRefusedArchiveWhich: only an archive that is the newest version the state knows of is
// sent again, 1 ms later; anything the state has superseded, and any ACTIVE finding, is not.
func TestRefusedArchiveWhich(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 123e6, time.UTC)
	finding := func(id, record string) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"Id": id, "UpdatedAt": asff.Stamp(at), "RecordState": record, "Title": "t"})
		return b
	}
	s := &state.State{Entries: map[string]*state.Entry{
		"remembered": {LastImported: at},
		"active":     {LastImported: at.Add(time.Hour), Active: true},
		"newer":      {LastImported: at.Add(time.Hour)},
	}}
	for _, tc := range []struct {
		id, record string
		want       bool
	}{
		{"forgotten", "ARCHIVED", true},
		{"remembered", "ARCHIVED", true},
		{"active", "ARCHIVED", false},
		{"newer", "ARCHIVED", false},
		{"forgotten", "ACTIVE", false},
	} {
		id, again, when, ok := refusedArchive(s, finding(tc.id, tc.record), at.Add(time.Hour))
		if ok != tc.want {
			t.Errorf("%s %s: sent again %v, want %v", tc.id, tc.record, ok, tc.want)
			continue
		}
		if !ok {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(again, &m); err != nil {
			t.Fatal(err)
		}
		if id != tc.id || m["Id"] != tc.id || m["Title"] != "t" || m["RecordState"] != "ARCHIVED" {
			t.Errorf("%s: new version %s", tc.id, again)
		}
		if want := at.Add(time.Millisecond); !when.Equal(want) || m["UpdatedAt"] != asff.Stamp(want) {
			t.Errorf("%s: new version at %v (%v), want %v", tc.id, when, m["UpdatedAt"], want)
		}
	}
	// Refused for more than a day: Security Hub's last word, not sent again.
	if _, _, _, ok := refusedArchive(s, finding("forgotten", "ARCHIVED"), at.Add(resendArchivesFor+time.Minute)); ok {
		t.Error("an archive refused for more than a day is still sent again")
	}
}
