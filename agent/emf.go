package agent

import (
	"encoding/json"
	"time"

	"github.com/ec2sec/ec2sec/probes"
)

// CloudWatch metrics in Embedded Metric Format (EMF): the run summary and one small document
// per failing check go to CloudWatch Logs, which extracts the metrics; no PutMetricData.
//
// Cardinality is bounded by design: a custom metric is one namespace + name + dimension
// values, billed per metric-hour in which it is published. No dimension ever carries a
// per-host value (instance id, host name, address, AMI): those are in the log fields, for
// Logs Insights and Contributor Insights. The metrics are fleet series of the account and
// region whose log group they land in, at most
//
//	metricsMax = len(fleetMetrics) + versions + len(probes.Catalog()) + 1
//
// (the fleet series, Scans per agent version in use, Failed per check, "other" for a check
// id the catalog does not know). Counts are listed as metrics only when not zero (their
// value stays in the log fields): an hour in which no host had a dropped event publishes no
// DroppedEvents and costs nothing for it. docs/fleet.md has the cost formula.

// EMFNamespace is the CloudWatch namespace of every metric the agent publishes.
const EMFNamespace = "ec2sec"

// The dimension keys the agent uses; none has a per-host value.
const (
	DimCheck        = "Check"        // a catalog check id (bounded by the catalog)
	DimAgentVersion = "AgentVersion" // the agent's version (bounded by the versions deployed)
)

// fleetMetrics are the run summary's metrics with no dimension, in the order listed.
// always: published every scan (Scans counts agents reporting; DurationMs is a distribution).
var fleetMetrics = []struct {
	name, unit string
	always     bool
}{
	{"Scans", "Count", true},
	{"DurationMs", "Milliseconds", true},
	{"Passed", "Count", false},
	{"Failed", "Count", false},
	{"Warning", "Count", false},
	{"NotAvailable", "Count", false},
	{"FailedCritical", "Count", false},
	{"FailedHigh", "Count", false},
	{"FailedMedium", "Count", false},
	{"FailedLow", "Count", false},
	{"FailedInformational", "Count", false},
	{"DroppedEvents", "Count", false},   // log events dropped to keep the spool bounded
	{"FindingsSkipped", "Count", false}, // findings not sent: Security Hub unreachable from the host
	{"SpoolBacklog", "Count", false},    // spool batches waiting from earlier scans
}

// otherCheck stands for a check id the catalog does not know, so a probe bug cannot add
// metrics without bound.
const otherCheck = "other"

// emfDirective is one CloudWatchMetrics entry.
type emfDirective struct {
	Namespace  string              `json:"Namespace"`
	Dimensions [][]string          `json:"Dimensions"`
	Metrics    []map[string]string `json:"Metrics"`
}

func emfRoot(ts int64, ds ...emfDirective) map[string]any {
	return map[string]any{"Timestamp": ts, "CloudWatchMetrics": ds}
}

func metric(name, unit string) map[string]string {
	return map[string]string{"Name": name, "Unit": unit}
}

// summaryEvent is the run summary: the scan's counts as log fields (for queries) and as
// fleet metrics, plus Scans per agent version.
func summaryEvent(rep *Report, st SpoolStats, backlog int) string {
	bySev := map[probes.Severity]int{}
	for _, res := range rep.Results {
		if res.Status == probes.Failed {
			bySev[res.Severity]++
		}
	}
	m := map[string]any{
		"type":            "run-summary",
		"host":            rep.Host,
		"agent_version":   Version(),
		DimAgentVersion:   Version(),
		"scanned_at":      rep.ScannedAt,
		"probes":          rep.Probes,
		"Scans":           1,
		"DurationMs":      rep.Summary.DurationMS,
		"Passed":          rep.Summary.Passed,
		"Failed":          rep.Summary.Failed,
		"Warning":         rep.Summary.Warning,
		"NotAvailable":    rep.Summary.NotAvailable,
		"DroppedEvents":   st.DroppedEvents,
		"FindingsSkipped": st.HubSkipped,
		"SpoolBacklog":    backlog,
		// Not metrics (no cost): exposures no longer seen re-asserted, and those past the bound.
		"ExposuresUnseen":    st.Exposures,
		"ExposuresUntracked": st.Untracked,
	}
	for s := probes.Informational; s <= probes.Critical; s++ {
		m["Failed"+titleCase(s.String())] = bySev[s]
	}
	var ms []map[string]string
	for _, f := range fleetMetrics {
		if v, _ := m[f.name].(int); f.always || v != 0 {
			ms = append(ms, metric(f.name, f.unit))
		}
	}
	m["_aws"] = emfRoot(rep.ScannedAt.UnixMilli(),
		emfDirective{EMFNamespace, [][]string{{}}, ms},
		emfDirective{EMFNamespace, [][]string{{DimAgentVersion}}, []map[string]string{metric("Scans", "Count")}},
	)
	b, _ := json.Marshal(m)
	return string(b)
}

// checkEvents are one EMF document per check with FAILED results on this host: the fleet's
// failed results by check. A passing check publishes nothing (and costs nothing).
func checkEvents(rep *Report) []string {
	failed := map[string]int{}
	var order []string
	for _, r := range rep.Results {
		if r.Status != probes.Failed {
			continue
		}
		c := r.Check
		if _, ok := probes.Lookup(c); !ok {
			c = otherCheck
		}
		if failed[c] == 0 {
			order = append(order, c)
		}
		failed[c]++
	}
	out := make([]string, 0, len(order))
	for _, c := range order {
		b, _ := json.Marshal(map[string]any{
			"type":   "check-failed",
			DimCheck: c,
			"Failed": failed[c],
			"_aws": emfRoot(rep.ScannedAt.UnixMilli(),
				emfDirective{EMFNamespace, [][]string{{DimCheck}}, []map[string]string{metric("Failed", "Count")}}),
		})
		out = append(out, string(b))
	}
	return out
}

// CheckMetricsEvery is the cadence of the failed-by-check series: a host publishes them
// with its first scan in each such block of UTC time (00-06, 06-12, ...), so a fleet
// scanning hourly publishes each Check series in one hour of six. Posture by check moves
// slowly; this costs a sixth of hourly series in metric-hours and in log bytes. The series'
// Sum over 6 h is the fleet's FAILED results of that check (for intervals up to 6 h).
const CheckMetricsEvery = 6 * time.Hour

// checkMetricsDue reports whether a scan at at publishes the failed-by-check series, the
// last having been published at last (zero: never).
func checkMetricsDue(at, last time.Time) bool {
	return last.IsZero() || !at.Truncate(CheckMetricsEvery).Equal(last.Truncate(CheckMetricsEvery))
}

// metricEvents are all EMF documents one report publishes, the run summary last (a scan's
// events end with its summary); the failed-by-check documents only when checks is set.
func metricEvents(rep *Report, st SpoolStats, backlog int, checks bool) []string {
	var out []string
	if checks {
		out = checkEvents(rep)
	}
	return append(out, summaryEvent(rep, st, backlog))
}

// titleCase is s with its first letter kept and the rest lower case ("HIGH" -> "High").
func titleCase(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	for i := 1; i < len(b); i++ {
		if b[i] >= 'A' && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}
