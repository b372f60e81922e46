package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// fakeProbe behaves as told: returns rs, fails with err, panics, or hangs ignoring ctx.
type fakeProbe struct {
	name   string
	checks []string
	run    func(ctx context.Context) ([]probes.Result, error)
}

func (p fakeProbe) Name() string { return p.name }
func (p fakeProbe) Checks() []probes.Check {
	var cs []probes.Check
	for _, id := range p.checks {
		cs = append(cs, probes.Check{ID: id, Probe: p.name, Severity: probes.Medium, Title: "title of " + id, Practices: []int{7}, SecurityHub: []string{"EC2.1"}})
	}
	return cs
}
func (p fakeProbe) Run(ctx context.Context, _ *probes.Env) ([]probes.Result, error) {
	return p.run(ctx)
}

func scanWith(t *testing.T, ps []probes.Probe, timeout time.Duration) *Report {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ProbeTimeout = Duration{timeout}
	r, err := Scan(context.Background(), ScanOptions{Root: t.TempDir(), Config: cfg, Available: ps, IMDS: metadata.New(metadata.Options{})})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return r
}

func TestScanIsolatesProbes(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ps := []probes.Probe{
		fakeProbe{"good", []string{"good-a", "good-b"}, func(context.Context) ([]probes.Result, error) {
			return []probes.Result{
				probes.NewResult("good-a", probes.Failed, "/etc/x", "bad x"),
				probes.NewResult("not-mine", probes.Failed, "", "a check of another probe"),
			}, nil
		}},
		fakeProbe{"erring", []string{"erring-a"}, func(context.Context) ([]probes.Result, error) {
			return nil, errors.New("no permission to look")
		}},
		fakeProbe{"panicking", []string{"panicking-a"}, func(context.Context) ([]probes.Result, error) {
			var m map[string]int
			//lint:ignore SA5000 this probe panics on purpose
			m["x"]++ // assignment to entry in nil map
			return nil, nil
		}},
		fakeProbe{"hanging", []string{"hanging-a"}, func(context.Context) ([]probes.Result, error) {
			<-release // ignores its context on purpose
			return nil, nil
		}},
	}
	start := time.Now()
	r := scanWith(t, ps, 300*time.Millisecond)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("scan waited %s for a hanging probe", d)
	}
	got := map[string]probes.Result{}
	for _, res := range r.Results {
		if _, dup := got[res.Check]; dup {
			t.Errorf("two results for %s", res.Check)
		}
		got[res.Check] = res
	}
	if _, ok := got["not-mine"]; ok {
		t.Error("a result for a check the probe does not own was kept")
	}
	want := map[string]struct {
		status probes.Status
		reason string
	}{
		"good-a":      {probes.Failed, "bad x"},
		"good-b":      {probes.NotAvailable, "reported nothing"},
		"erring-a":    {probes.NotAvailable, "no permission to look"},
		"panicking-a": {probes.NotAvailable, "crashed"},
		"hanging-a":   {probes.NotAvailable, "timed out"},
	}
	for id, w := range want {
		g := got[id]
		if g.Status != w.status || !strings.Contains(g.Reason, w.reason) {
			t.Errorf("%s: %s %q, want %s containing %q", id, g.Status, g.Reason, w.status, w.reason)
		}
	}
	runs := map[string]string{}
	for _, pr := range r.Probes {
		runs[pr.Name] = pr.Status
	}
	if !reflect.DeepEqual(runs, map[string]string{"good": "ok", "erring": "error", "panicking": "panic", "hanging": "timeout"}) {
		t.Errorf("probe runs: %v", runs)
	}
	if s := r.Summary; s.Failed != 1 || s.NotAvailable != 4 || s.Passed != 0 {
		t.Errorf("summary %+v", s)
	}
}

func TestScanFillsFromCatalog(t *testing.T) {
	ps := []probes.Probe{fakeProbe{"p", []string{"p-a", "p-b"}, func(context.Context) ([]probes.Result, error) {
		raised := probes.NewResult("p-a", probes.Failed, "", "raised")
		raised.Severity = probes.Critical
		return []probes.Result{raised, probes.NewResult("p-b", probes.Passed, "", "fine")}, nil
	}}}
	r := scanWith(t, ps, time.Second)
	a, b := r.Results[0], r.Results[1]
	if a.Severity != probes.Critical || b.Severity != probes.Informational {
		t.Errorf("severities %s, %s; want the raised CRITICAL kept and INFORMATIONAL for PASSED", a.Severity, b.Severity)
	}
	if a.Title != "title of p-a" || a.Probe != "p" || !slices.Equal(a.Compliance, []string{"Security Hub EC2.1", "practice 7"}) {
		t.Errorf("not filled from the catalog: %+v", a)
	}
	if !strings.HasPrefix(a.Resource, "host/") || a.Evidence == nil {
		t.Errorf("host resource %q, evidence %v", a.Resource, a.Evidence)
	}
}

func TestResultIDsAreStable(t *testing.T) {
	secret := func(fp string) probes.Result {
		return probes.NewResult("p-a", probes.Failed, "/home/u/.aws/credentials", "key").With(probes.Fingerprint, fp)
	}
	ps := []probes.Probe{fakeProbe{"p", []string{"p-a"}, func(context.Context) ([]probes.Result, error) {
		return []probes.Result{secret("aaa"), secret("bbb")}, nil
	}}}
	r1, r2 := scanWith(t, ps, time.Second), scanWith(t, ps, time.Second)
	ids := func(r *Report) []string {
		var out []string
		for _, res := range r.Results {
			out = append(out, res.ID)
		}
		sort.Strings(out)
		return out
	}
	if !slices.Equal(ids(r1), ids(r2)) {
		t.Errorf("ids changed between runs: %v vs %v", ids(r1), ids(r2))
	}
	if i := ids(r1); i[0] == i[1] {
		t.Errorf("two secrets in one file share an id: %v", i)
	}
}

// The JSON is exactly the ec2sec/v1 shape (docs/json.md): these keys, these types, nulls for absent host
// fields.
func TestJSONShape(t *testing.T) {
	s := fakeimds.New(t)
	ps := []probes.Probe{probes.IMDSProbe{}}
	r, err := Scan(context.Background(), ScanOptions{Root: t.TempDir(), Available: ps, IMDS: metadata.New(metadata.Options{Endpoint: s.URL})})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(b.String()), &doc); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		sort.Strings(k)
		return k
	}
	if got := keys(doc); !slices.Equal(got, []string{"host", "probes", "results", "scanned_at", "schema", "summary"}) {
		t.Errorf("top-level keys %v", got)
	}
	if doc["schema"] != "ec2sec/v1" {
		t.Errorf("schema %v", doc["schema"])
	}
	if _, err := time.Parse(time.RFC3339, doc["scanned_at"].(string)); err != nil {
		t.Errorf("scanned_at: %v", err)
	}
	host := doc["host"].(map[string]any)
	if got := keys(host); !slices.Equal(got, []string{"account_id", "ami_id", "arch", "boot_time", "hostname", "instance_id", "kernel_version", "os", "partition", "platform", "platform_version", "region", "virtualization"}) {
		t.Errorf("host keys %v", got)
	}
	if host["instance_id"] != "i-0123456789abcdef0" || host["account_id"] != "123456789012" || host["partition"] != "aws" {
		t.Errorf("host %v", host)
	}
	res := doc["results"].([]any)
	if len(res) != 3 {
		t.Fatalf("%d results", len(res))
	}
	for _, x := range res {
		m := x.(map[string]any)
		if got := keys(m); !slices.Equal(got, []string{"check", "compliance", "evidence", "id", "probe", "reason", "remediation", "resource", "severity", "status", "title"}) {
			t.Errorf("result keys %v", got)
		}
		if got := keys(m["remediation"].(map[string]any)); !slices.Equal(got, []string{"text", "url"}) {
			t.Errorf("remediation keys %v", got)
		}
		if !strings.HasPrefix(m["resource"].(string), "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0") {
			t.Errorf("resource %v", m["resource"])
		}
	}
	if got := keys(doc["summary"].(map[string]any)); !slices.Equal(got, []string{"duration_ms", "failed", "not_available", "passed", "warning"}) {
		t.Errorf("summary keys %v", got)
	}

	// Off EC2, every identity field but the hostname is null.
	r, _ = Scan(context.Background(), ScanOptions{Root: t.TempDir(), Available: ps, IMDS: metadata.New(metadata.Options{Endpoint: "http://127.0.0.1:1"})})
	b.Reset()
	WriteJSON(&b, r)
	doc = nil
	json.Unmarshal([]byte(b.String()), &doc)
	host = doc["host"].(map[string]any)
	for _, k := range []string{"instance_id", "account_id", "region", "partition", "ami_id"} {
		if v, ok := host[k]; !ok || v != nil {
			t.Errorf("off EC2 host.%s = %v, want null", k, v)
		}
	}
}

func TestResultKeySeparatesIDs(t *testing.T) {
	ps := []probes.Probe{fakeProbe{"p", []string{"p-a"}, func(context.Context) ([]probes.Result, error) {
		r := probes.NewResult("p-a", probes.Failed, "arn:aws:ec2:us-east-1:1:security-group/sg-1", "open")
		return []probes.Result{r.WithKey("port/22"), r.WithKey("port/3389")}, nil
	}}}
	r := scanWith(t, ps, time.Second)
	if r.Results[0].ID == r.Results[1].ID {
		t.Errorf("two ports of one group share id %s", r.Results[0].ID)
	}
	var b strings.Builder
	WriteJSON(&b, r)
	if strings.Contains(b.String(), "port/22") {
		t.Error("the id key is shown in the report")
	}
}

// envProbe is a fakeProbe that sees its Env, and may say it never reads the identity.
type envProbe struct {
	fakeProbe
	free bool
	look func(env *probes.Env)
}

func (p envProbe) IdentityFree() bool { return p.free }
func (p envProbe) Run(ctx context.Context, env *probes.Env) ([]probes.Result, error) {
	p.look(env)
	return p.fakeProbe.Run(ctx, env)
}

// TestIdentityFreeProbesDoNotWaitForIMDS: a probe that never reads the identity runs while
// IMDS is still being asked (here IMDS answers only once that probe has started); the others
// start with the identity.
func TestIdentityFreeProbesDoNotWaitForIMDS(t *testing.T) {
	s := fakeimds.New(t)
	started := make(chan struct{})
	var early atomic.Bool // IMDS answered a GET only after the free probe had started
	s.Set(func(s *fakeimds.Server) {
		s.Before = func(r *http.Request) {
			if r.Method == http.MethodGet {
				select {
				case <-started:
					early.Store(true)
				case <-time.After(5 * time.Second): // beyond the client's timeout: identity lost
				}
			}
		}
	})

	noResults := func(context.Context) ([]probes.Result, error) { return nil, nil }
	var freeSaw, boundSaw atomic.Value
	ps := []probes.Probe{
		envProbe{fakeProbe{"free", []string{"free-a"}, noResults}, true, func(env *probes.Env) {
			freeSaw.Store(env.Identity.InstanceID)
			close(started)
		}},
		envProbe{fakeProbe{"bound", []string{"bound-a"}, noResults}, false, func(env *probes.Env) {
			boundSaw.Store(env.Identity.InstanceID)
		}},
	}
	r, err := Scan(context.Background(), ScanOptions{Root: t.TempDir(), Available: ps, IMDS: metadata.New(metadata.Options{Endpoint: s.URL})})
	if err != nil {
		t.Fatal(err)
	}
	if !early.Load() {
		t.Error("IMDS was asked for the identity before the identity-free probe started")
	}
	if got := freeSaw.Load(); got != "" {
		t.Errorf("the identity-free probe saw instance %q; the scan cannot have known it", got)
	}
	if got := boundSaw.Load(); got != r.Host.InstanceID || got == "" {
		t.Errorf("the other probe saw instance %q, the report says %q", got, r.Host.InstanceID)
	}
}

// TestOfflineRefusesDial: in an offline image scan the scan's dialer refuses every probe,
// also one that does not check Env.Offline itself.
func TestOfflineRefusesDial(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var dialErr error
	p := envProbe{fakeProbe{"dialer", []string{"dialer-a"}, func(context.Context) ([]probes.Result, error) { return nil, nil }}, true, func(env *probes.Env) {
		var c net.Conn
		if c, dialErr = env.Dial(context.Background(), "tcp", l.Addr().String()); c != nil {
			c.Close()
		}
	}}
	if _, err := Scan(context.Background(), ScanOptions{Root: t.TempDir(), Offline: true, Available: []probes.Probe{p}, IMDS: metadata.New(metadata.Options{})}); err != nil {
		t.Fatal(err)
	}
	if dialErr == nil || !strings.Contains(dialErr.Error(), "offline image") {
		t.Errorf("dial in an offline scan: %v, want refused", dialErr)
	}
}
