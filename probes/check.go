package probes

import "fmt"

// Check is one row of the check catalog: a stable id (never renamed once shipped), the probe
// that runs it, its default severity, and how it maps to the field guide's practices, the CIS
// AWS Foundations Benchmark and Security Hub controls.
type Check struct {
	ID          string
	Probe       string
	Severity    Severity
	Title       string
	Practices   []int
	CIS         []string // CIS AWS Foundations control numbers, e.g. "5.6"
	SecurityHub []string // Security Hub control ids, e.g. "EC2.8"
	Remediation Remediation
}

// Compliance returns the check's mappings as the strings results carry, e.g.
// ["CIS AWS Foundations 5.6", "Security Hub EC2.8", "practice 1"].
func (c Check) Compliance() []string {
	out := make([]string, 0, len(c.CIS)+len(c.SecurityHub)+len(c.Practices))
	for _, s := range c.CIS {
		out = append(out, "CIS AWS Foundations "+s)
	}
	for _, s := range c.SecurityHub {
		out = append(out, "Security Hub "+s)
	}
	for _, p := range c.Practices {
		out = append(out, fmt.Sprintf("practice %d", p))
	}
	return out
}
