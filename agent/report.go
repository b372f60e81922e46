package agent

import (
	"slices"
	"time"

	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// Schema names the JSON report format (docs/json.md, docs/ec2sec-v1.schema.json); a
// document of this name only ever gains members.
const Schema = "ec2sec/v1"

// Report is one scan's outcome, shaped as `--format json` (docs/json.md).
type Report struct {
	Schema    string            `json:"schema"`
	ScannedAt time.Time         `json:"scanned_at"`
	Host      Host              `json:"host"`
	Results   []probes.Result   `json:"results"`
	Summary   Summary           `json:"summary"`
	Probes    []ProbeRun        `json:"probes"`
	identity  metadata.Identity // kept for sinks that need more than Host shows
}

// Summary counts results by status; DurationMS is the scan's wall time.
type Summary struct {
	Passed       int   `json:"passed"`
	Failed       int   `json:"failed"`
	Warning      int   `json:"warning"`
	NotAvailable int   `json:"not_available"`
	DurationMS   int64 `json:"duration_ms"`
}

// count adds one result of status st.
func (s *Summary) count(st probes.Status) {
	switch st {
	case probes.Passed:
		s.Passed++
	case probes.Failed:
		s.Failed++
	case probes.Warning:
		s.Warning++
	default:
		s.NotAvailable++
	}
}

// ProbeRun records how one probe ran: "ok", "error", "timeout" or "panic", and how long it took.
type ProbeRun struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// Identity returns what IMDS said of the host during the scan.
func (r *Report) Identity() metadata.Identity { return r.identity }

// Reaches reports whether any FAILED result has severity at or above min.
func (r *Report) Reaches(min probes.Severity) bool {
	if min == probes.SeverityUnset {
		return false
	}
	return slices.ContainsFunc(r.Results, func(res probes.Result) bool {
		return res.Status == probes.Failed && res.Severity >= min
	})
}
