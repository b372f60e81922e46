package probes

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Status is a result's compliance status; the values are ASFF's Compliance.Status values.
type Status string

// The statuses a check can report.
const (
	Passed       Status = "PASSED"
	Failed       Status = "FAILED"
	Warning      Status = "WARNING"
	NotAvailable Status = "NOT_AVAILABLE"
)

// Severity is an ASFF severity label. The zero value means "not set": the scan then fills in
// the check's default for FAILED and WARNING results and INFORMATIONAL for the others.
type Severity int

// Severities in increasing order, so they compare with < and >.
const (
	SeverityUnset Severity = iota
	Informational
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"", "INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// String returns the ASFF label ("HIGH"), or "" when unset.
func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("Severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity accepts an ASFF label in any case ("high", "HIGH"), and "info".
func ParseSeverity(s string) (Severity, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if u == "INFO" {
		return Informational, nil
	}
	for i, n := range severityNames {
		if i > 0 && n == u {
			return Severity(i), nil
		}
	}
	return SeverityUnset, fmt.Errorf("unknown severity %q (want informational, low, medium, high or critical)", s)
}

// MarshalJSON writes the label.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a label.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	if str == "" {
		*s = SeverityUnset
		return nil
	}
	v, err := ParseSeverity(str)
	*s = v
	return err
}

// Remediation tells a person how to fix what a check found.
type Remediation struct {
	Text string `json:"text"`
	URL  string `json:"url"`
}

// Result is one check's verdict on one resource. Probes fill Check, Status, Resource,
// Reason, Evidence and, when a correlation raises it, Severity; the scan fills the rest from
// the catalog (Probe, Title, default Severity, Remediation, Compliance) and computes ID.
type Result struct {
	ID          string         `json:"id"`
	Check       string         `json:"check"`
	Probe       string         `json:"probe"`
	Status      Status         `json:"status"`
	Severity    Severity       `json:"severity"`
	Title       string         `json:"title"`
	Resource    string         `json:"resource"`
	Reason      string         `json:"reason"`
	Evidence    map[string]any `json:"evidence"`
	Remediation Remediation    `json:"remediation"`
	Compliance  []string       `json:"compliance"`
	// Key tells apart results of one check on one resource that are fixed separately (one
	// port of a security group); it is part of the stable id and is not shown.
	Key string `json:"-"`
}

// NewResult returns a result of check with the given status, resource and reason.
// An empty resource means the host itself; the scan fills in the instance ARN or hostname.
func NewResult(check string, status Status, resource, reason string) Result {
	return Result{Check: check, Status: status, Resource: resource, Reason: reason}
}

// With returns r with evidence key k set to v. Evidence must never hold a secret value.
func (r Result) With(k string, v any) Result {
	m := make(map[string]any, len(r.Evidence)+1)
	for key, val := range r.Evidence {
		m[key] = val
	}
	m[k] = v
	r.Evidence = m
	return r
}

// WithKey returns r with its id key set (see Result.Key).
func (r Result) WithKey(k string) Result {
	r.Key = k
	return r
}

// Fingerprint is the evidence key that, when present, becomes part of the result's stable id:
// secret findings set it so each secret in the same file is a result of its own.
const Fingerprint = "fingerprint"
