package probes

import (
	"fmt"
	"testing"
)

// TestManagementChecksMatchCatalog pins the issue-4 rows of CHECKS.md: ids, probe, default
// severity and mappings are the contract.
func TestManagementChecksMatchCatalog(t *testing.T) {
	want := map[string]string{
		"ssm-agent-missing":         "ssm HIGH [5 9] [] [SSM.1]",
		"ssm-agent-not-running":     "ssm HIGH [5 9] [] [SSM.1]",
		"ssm-endpoints-unreachable": "ssm HIGH [5 7] [] []",
		"ssm-agent-unhealthy":       "ssm MEDIUM [5] [] []",
		"ssh-listening-public":      "sshd MEDIUM [5 2] [5.2 5.3] [EC2.13 EC2.19]",
		"ssh-password-auth":         "sshd HIGH [5] [] []",
		"ssh-root-login":            "sshd MEDIUM [5] [] []",
		"public-ipv4":               "network MEDIUM [7] [] [EC2.9]",
		"serial-console-login":      "console MEDIUM [11] [] []",
	}
	for id, w := range want {
		c, ok := Lookup(id)
		if !ok {
			t.Errorf("%s: not in the catalog", id)
			continue
		}
		got := fmt.Sprintf("%s %s %v %v %v", c.Probe, c.Severity, c.Practices, c.CIS, c.SecurityHub)
		if got != w {
			t.Errorf("%s: %s, want %s", id, got, w)
		}
		if c.Title == "" || c.Remediation.Text == "" || c.Remediation.URL == "" {
			t.Errorf("%s: title and remediation are required", id)
		}
	}
}
