package probes

import (
	"fmt"
	"sync"
)

// Check is one row of the check catalog (docs/checks.md is generated from it): a stable id
// (never renamed once shipped), the probe that runs it, its default severity, when it fails
// and when another result raises it, and how it maps to the Practices, the CIS AWS Foundations
// Benchmark and Security Hub controls.
type Check struct {
	ID       string
	Probe    string
	Severity Severity
	Title    string
	// FailedWhen says, in a clause, what makes a result FAILED ("a GET without token is
	// answered 200").
	FailedWhen string
	// RaisedWhen says when the severity is raised above the default because of what else the
	// scan saw ("HIGH with a public IPv4"); "" when it never is. Correlations holds the
	// scan-level rules; a probe may raise its own results (imds-hop-limit).
	RaisedWhen  string
	Practices   []int    // numbers of Practices, e.g. 1 for "Enforce IMDSv2 on all instances"
	CIS         []string // CIS AWS Foundations control numbers, e.g. "5.6"
	SecurityHub []string // Security Hub control ids, e.g. "EC2.8"
	Remediation Remediation
	// Exposure: a FAILED result is a secret seen on the host, which may have been read while
	// it was there. Its finding stays FAILED and ACTIVE after the secret is gone, until a
	// person resolves it (agent/state: "Exposures").
	Exposure bool
}

// Practice is one of the twelve EC2 security practices the checks map to (results name them
// "practice N" in their compliance list).
type Practice struct {
	N        int
	Text     string
	Priority string
}

// Practices are the twelve practices of the EC2 security field guide the catalog was written
// against (Tarek Cheikh, "AWS EC2 Security Best Practices"), in its order and with its
// priorities.
var Practices = []Practice{
	{1, "Enforce IMDSv2 on all instances", "Critical"},
	{2, "Apply security groups with least privilege", "Critical"},
	{3, "Enable default EBS encryption in all regions", "High"},
	{4, "Use instance profiles instead of access keys", "Critical"},
	{5, "Replace SSH with SSM Session Manager", "High"},
	{6, "Deploy EC2 Instance Connect Endpoint", "Medium"},
	{7, "Place instances in private subnets", "High"},
	{8, "Enable VPC Flow Logs on all VPCs", "High"},
	{9, "Enable Amazon Inspector for continuous scanning", "High"},
	{10, "Harden AMIs and block public sharing", "High"},
	{11, "Disable EC2 serial console access", "Medium"},
	{12, "Never put secrets in user data", "Critical"},
}

// IsExposure reports whether check is a secret check (Check.Exposure), whose FAILED results
// are exposures.
func IsExposure(check string) bool { return exposureChecks()[check] }

var exposureChecks = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, c := range Catalog() {
		if c.Exposure {
			m[c.ID] = true
		}
	}
	return m
})

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
