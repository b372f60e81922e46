package agent

import (
	"context"
	"encoding/json"

	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// metricKey is one CloudWatch custom metric: namespace, name and dimension values. Each
// distinct key is billed per metric-hour in which it is published.
type metricKey struct {
	Namespace, Name string
	Dims            string // "k=v,k=v", keys sorted; "" for no dimension
}

func (k metricKey) String() string { return k.Namespace + "/" + k.Name + "{" + k.Dims + "}" }

// metricShape is a metric without its dimension values: what a dashboard names.
func (k metricKey) shape() string {
	var keys []string
	for kv := range strings.SplitSeq(k.Dims, ",") {
		if kv != "" {
			keys = append(keys, strings.SplitN(kv, "=", 2)[0])
		}
	}
	return k.Namespace + "/" + k.Name + "[" + strings.Join(keys, ",") + "]"
}

// emfMetrics reads an EMF document as CloudWatch does (the specification's rules: every
// dimension key and metric name a member of the root, dimension values strings, metric
// values numbers) and returns the metrics it publishes. ok is false for a plain log event.
func emfMetrics(t testing.TB, doc string) (keys []metricKey, ok bool) {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatalf("event is not JSON: %v", err)
	}
	aws, ok := root["_aws"].(map[string]any)
	if !ok {
		return nil, false
	}
	if _, ok := aws["Timestamp"].(float64); !ok {
		t.Errorf("EMF without a numeric Timestamp: %s", doc)
	}
	ds, _ := aws["CloudWatchMetrics"].([]any)
	if len(ds) == 0 {
		t.Errorf("EMF without CloudWatchMetrics: %s", doc)
	}
	for _, d := range ds {
		d := d.(map[string]any)
		ns, _ := d["Namespace"].(string)
		if ns == "" {
			t.Errorf("directive without a namespace: %s", doc)
		}
		sets, _ := d["Dimensions"].([]any)
		if len(sets) == 0 {
			t.Errorf("directive without a dimension set: %s", doc)
		}
		for _, set := range sets {
			var kv []string
			for _, k := range set.([]any) {
				v, ok := root[k.(string)].(string)
				if !ok {
					t.Errorf("dimension %v has no string value at the root: %s", k, doc)
				}
				kv = append(kv, k.(string)+"="+v)
			}
			slices.Sort(kv)
			for _, m := range d["Metrics"].([]any) {
				name := m.(map[string]any)["Name"].(string)
				if _, ok := root[name].(float64); !ok {
					t.Errorf("metric %s has no number at the root: %s", name, doc)
				}
				keys = append(keys, metricKey{ns, name, strings.Join(kv, ",")})
			}
		}
	}
	return keys, true
}

// everyResult is a scan in which every catalog check has a result of every status, FAILED
// at every severity, plus a check id the catalog does not know.
func everyResult() []probes.Result {
	var rs []probes.Result
	for _, c := range probes.Catalog() {
		for _, st := range []probes.Status{probes.Passed, probes.Warning, probes.NotAvailable} {
			rs = append(rs, probes.NewResult(c.ID, st, "/r/"+string(st), "x"))
		}
		for s := probes.Informational; s <= probes.Critical; s++ {
			r := probes.NewResult(c.ID, probes.Failed, "/f/"+s.String(), "x")
			r.Severity = s
			rs = append(rs, r)
		}
	}
	return append(rs, probes.NewResult("not-in-the-catalog", probes.Failed, "", "x"))
}

// hosts that differ in every identity field.
var emfHosts = []metadata.Identity{
	{InstanceID: "i-0aaaaaaaaaaaaaaa1", AccountID: "111111111111", Region: "us-east-1", Partition: "aws", Domain: "amazonaws.com", Hostname: "ip-10-0-0-1.ec2.internal", AMIID: "ami-0aaaaaaaaaaaaaaa1"},
	{InstanceID: "i-0bbbbbbbbbbbbbbb2", AccountID: "222222222222", Region: "eu-west-1", Partition: "aws", Domain: "amazonaws.com", Hostname: "ip-10-9-9-9.eu-west-1.compute.internal", AMIID: "ami-0bbbbbbbbbbbbbbb2"},
	{Hostname: "buildhost", Reason: "not on EC2"},
}

// perHost are the values no dimension may carry: every field that tells hosts apart.
func perHost(id metadata.Identity) []string {
	var out []string
	for _, v := range []string{id.InstanceID, id.Hostname, id.AMIID, id.InstanceARN()} {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// checkBounded holds metric keys to the rules: no per-host value in any dimension, only
// the known dimension keys, in the ec2sec namespace, and no more than the formula allows.
func checkBounded(t *testing.T, keys map[metricKey]bool, ids []metadata.Identity) {
	t.Helper()
	for k := range keys {
		if k.Namespace != EMFNamespace {
			t.Errorf("%s: namespace is not %s", k, EMFNamespace)
		}
		for kv := range strings.SplitSeq(k.Dims, ",") {
			if kv == "" {
				continue
			}
			name, val, _ := strings.Cut(kv, "=")
			if name != DimCheck && name != DimAgentVersion {
				t.Errorf("%s: dimension %s is not one of the bounded ones (%s, %s)", k, name, DimCheck, DimAgentVersion)
			}
			for _, id := range ids {
				for _, h := range perHost(id) {
					if strings.Contains(val, h) || strings.Contains(h, val) {
						t.Errorf("%s: dimension %s carries the per-host value %q", k, name, h)
					}
				}
			}
		}
	}
	if max := len(fleetMetrics) + 1 + len(probes.Catalog()) + 1; len(keys) > max {
		t.Errorf("%d metrics, more than the formula's bound %d (fleet series, one version, every check, other)", len(keys), max)
	}
}

// TestEMFBoundedCardinality: over every EMF document the agent emits (the run summary with
// every counter set, one per failed check), for hosts that differ in everything, the
// metrics are the same set: no dimension carries a per-host value, so a fleet of any size
// publishes the metrics of one host.
func TestEMFBoundedCardinality(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	st := SpoolStats{DroppedEvents: 3, HubSkipped: 2}
	var first map[metricKey]bool
	all := map[metricKey]bool{}
	for i, id := range emfHosts {
		rep := synthetic(id, at, []string{"imds"}, everyResult()...)
		rep.Summary.DurationMS = 1234
		keys := map[metricKey]bool{}
		for _, doc := range metricEvents(rep, st, 5, true) {
			ks, ok := emfMetrics(t, doc)
			if !ok {
				t.Fatalf("metric event without _aws: %s", doc)
			}
			for _, k := range ks {
				keys[k], all[k] = true, true
			}
		}
		if i == 0 {
			first = keys
			// Every fleet series is there when its counter is set.
			for _, f := range fleetMetrics {
				if !keys[metricKey{EMFNamespace, f.name, ""}] {
					t.Errorf("fleet metric %s not published though its value is not zero", f.name)
				}
			}
			for _, c := range probes.Catalog() {
				if !keys[metricKey{EMFNamespace, "Failed", DimCheck + "=" + c.ID}] {
					t.Errorf("no Failed{Check=%s}", c.ID)
				}
			}
			continue
		}
		if !maps.Equal(keys, first) {
			t.Errorf("host %d publishes other metrics than host 0 for the same results: per-host cardinality\n%v\n%v", i, sortedKeys(keys), sortedKeys(first))
		}
	}
	checkBounded(t, all, emfHosts)

	// A clean host publishes only what is always there: zero counts cost nothing.
	clean := synthetic(emfHosts[0], at, []string{"imds"}, probes.NewResult("imds-v1-enabled", probes.Passed, "", "ok"))
	var names []string
	for _, doc := range metricEvents(clean, SpoolStats{}, 0, true) {
		ks, _ := emfMetrics(t, doc)
		for _, k := range ks {
			names = append(names, k.String())
		}
	}
	slices.Sort(names)
	want := []string{"ec2sec/DurationMs{}", "ec2sec/Passed{}", "ec2sec/Scans{AgentVersion=" + Version() + "}", "ec2sec/Scans{}"}
	if !slices.Equal(names, want) {
		t.Errorf("clean host publishes %v, want %v", names, want)
	}
}

// TestEMFDeliveredBounded runs the real Reporter and sinks against the strict fake for
// hosts that differ in everything and reads back every EMF event CloudWatch Logs received:
// the same rules hold for what is really sent, header and all.
func TestEMFDeliveredBounded(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	at := time.Now().Add(-time.Hour).UTC()
	all := map[metricKey]bool{}
	per := []map[metricKey]bool{}
	for _, id := range emfHosts[:2] {
		cfg := testConfig(t)
		rep, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
		if err != nil {
			t.Fatal(err)
		}
		for k := range 2 {
			if _, err := rep.Spool(context.Background(), synthetic(id, at.Add(time.Duration(k)*time.Minute), []string{"imds"}, everyResult()...)); err != nil {
				t.Fatal(err)
			}
			if fs, err := rep.Flush(context.Background()); err != nil || sum(fs.Pending) > 0 {
				t.Fatalf("flush: %v %v", err, fs)
			}
		}
		keys := map[metricKey]bool{}
		n := 0
		for _, e := range f.Events("/ec2sec/findings", id.InstanceID) {
			ks, ok := emfMetrics(t, e.Message)
			if !ok {
				continue
			}
			n++
			for _, k := range ks {
				keys[k], all[k] = true, true
			}
		}
		if n == 0 {
			t.Fatalf("%s: no EMF event delivered", id.InstanceID)
		}
		per = append(per, keys)
	}
	if !maps.Equal(per[0], per[1]) {
		t.Errorf("two hosts publish different metrics for the same results")
	}
	checkBounded(t, all, emfHosts)
	if v := f.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
}

func sortedKeys(m map[metricKey]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k.String())
	}
	slices.Sort(out)
	return out
}

// TestCheckMetricsCadence: the failed-by-check documents go out with a host's first scan in
// each CheckMetricsEvery block and with no other; the run summary with every scan. Twelve
// hourly scans from a block's start carry them twice.
func TestCheckMetricsCadence(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	rep, err := NewReporter(testConfig(t), nil, ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	id := emfHosts[0]
	// A block's start, 13 to 19 hours ago: all twelve scans are in the past.
	start := time.Now().Add(-13 * time.Hour).Truncate(CheckMetricsEvery).Add(7 * time.Minute)
	var with []int
	for k := range 12 {
		failing := probes.NewResult("imds-v1-enabled", probes.Failed, "", "x")
		if _, err := rep.Spool(context.Background(), synthetic(id, start.Add(time.Duration(k)*time.Hour), []string{"imds"}, failing)); err != nil {
			t.Fatal(err)
		}
		if fs, err := rep.Flush(context.Background()); err != nil || sum(fs.Pending) > 0 {
			t.Fatalf("flush: %v %v", err, fs)
		}
	}
	summaries := 0
	for _, e := range f.Events("/ec2sec/findings", id.InstanceID) {
		var m struct{ Type string }
		json.Unmarshal([]byte(e.Message), &m)
		switch m.Type {
		case "check-failed":
			with = append(with, int(time.UnixMilli(e.Timestamp).Sub(start).Hours()+0.5))
		case "run-summary":
			summaries++
		}
	}
	if !slices.Equal(with, []int{0, 6}) || summaries != 12 {
		t.Errorf("failed-by-check documents at hours %v and %d summaries, want hours [0 6] and 12", with, summaries)
	}
	if !checkMetricsDue(start, time.Time{}) || checkMetricsDue(start.Add(time.Hour), start) || !checkMetricsDue(start.Add(-time.Hour), start) {
		t.Error("checkMetricsDue: never published, same block, an earlier block (a clock set back)")
	}
}
