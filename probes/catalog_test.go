package probes

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// shippedChecks are the checks users' automation already relies on: ids are never renamed,
// and the probe, default severity and mappings (practices, CIS, Security Hub) change only
// through an issue that says so. A new check is added here when it ships.
var shippedChecks = map[string]string{
	"imds-v1-enabled":               "imds HIGH [1] [5.6] [EC2.8]",
	"imds-hop-limit":                "imds LOW [1] [] []",
	"imds-no-instance-profile":      "imds MEDIUM [4] [] []",
	"cred-long-lived-key":           "credentials CRITICAL [4] [] []",
	"cred-session-key":              "credentials MEDIUM [4] [] []",
	"cred-process-env":              "credentials HIGH [4] [] []",
	"cred-file-permissions":         "credentials HIGH [4] [] []",
	"secret-in-local-file":          "credentials HIGH [4 12] [] []",
	"userdata-secret":               "userdata CRITICAL [12] [] []",
	"userdata-cached-secret":        "userdata HIGH [12 10] [] []",
	"ssm-agent-missing":             "ssm HIGH [5 9] [] [SSM.1]",
	"ssm-agent-not-running":         "ssm HIGH [5 9] [] [SSM.1]",
	"ssm-endpoints-unreachable":     "ssm HIGH [5 7] [] []",
	"ssm-agent-unhealthy":           "ssm MEDIUM [5] [] []",
	"ssh-listening-public":          "sshd MEDIUM [5 2] [5.2 5.3] [EC2.13 EC2.19]",
	"ssh-password-auth":             "sshd HIGH [5] [] []",
	"ssh-root-login":                "sshd MEDIUM [5] [] []",
	"public-ipv4":                   "network MEDIUM [7] [] [EC2.9]",
	"serial-console-login":          "console MEDIUM [11] [] []",
	"sg-world-open-admin-port":      "ec2api CRITICAL [2] [5.2 5.3] [EC2.19]",
	"ebs-unencrypted-volume":        "ec2api HIGH [3] [] [EC2.3]",
	"ebs-default-encryption-off":    "ec2api MEDIUM [3] [2.2.1] [EC2.7]",
	"vpc-flow-logs-off":             "ec2api MEDIUM [8] [3.9] [EC2.6]",
	"ami-public":                    "ec2api CRITICAL [10] [] []",
	"serial-console-access-enabled": "ec2api MEDIUM [11] [] []",
	"imds-metadata-options":         "ec2api HIGH [1] [] [EC2.8]",
	"imds-v1-callers":               "imdswatch HIGH [1] [] []",
	"imds-container-callers":        "imdswatch MEDIUM [1] [] []",
}

// TestCatalogKeepsShippedChecks holds the catalog to shippedChecks: no shipped check lost,
// renamed or remapped (docs/checks.md is generated from the catalog, so it cannot catch that).
func TestCatalogKeepsShippedChecks(t *testing.T) {
	for id, want := range shippedChecks {
		c, ok := Lookup(id)
		if !ok {
			t.Errorf("%s: not in the catalog", id)
			continue
		}
		got := fmt.Sprintf("%s %s %v %v %v", c.Probe, c.Severity, c.Practices, c.CIS, c.SecurityHub)
		if got != want {
			t.Errorf("%s: %s, want %s", id, got, want)
		}
	}
}

// TestCatalogRowsComplete: every check fills every column of docs/checks.md and a
// remediation, maps only to practices that exist, and every correlation raising a check is
// described in its "raised when".
func TestCatalogRowsComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Catalog() {
		if seen[c.ID] {
			t.Errorf("%s: twice in the catalog", c.ID)
		}
		seen[c.ID] = true
		if c.Title == "" || c.FailedWhen == "" || c.Remediation.Text == "" || !strings.HasPrefix(c.Remediation.URL, "https://") {
			t.Errorf("%s: needs a title, a FailedWhen and a remediation with a URL", c.ID)
		}
		if len(c.Practices) == 0 {
			t.Errorf("%s: maps to no practice", c.ID)
		}
		for _, p := range c.Practices {
			if !slices.ContainsFunc(Practices, func(q Practice) bool { return q.N == p }) {
				t.Errorf("%s: practice %d does not exist", c.ID, p)
			}
		}
	}
	for _, r := range Correlations() {
		c, ok := Lookup(r.Raise)
		if !ok {
			t.Errorf("correlation raises %s, which is not in the catalog", r.Raise)
			continue
		}
		if _, ok := Lookup(r.When); !ok {
			t.Errorf("correlation on %s, which is not in the catalog", r.When)
		}
		if !strings.Contains(c.RaisedWhen, r.To.String()) {
			t.Errorf("%s: RaisedWhen %q does not say it is raised to %s (when %s fails)", c.ID, c.RaisedWhen, r.To, r.When)
		}
	}
}

func TestProbesOwnTheirChecks(t *testing.T) {
	names := map[string]bool{}
	for _, p := range All() {
		if names[p.Name()] {
			t.Errorf("probe %s registered twice", p.Name())
		}
		names[p.Name()] = true
		for _, c := range p.Checks() {
			if c.Probe != p.Name() {
				t.Errorf("check %s names probe %s but belongs to %s", c.ID, c.Probe, p.Name())
			}
		}
	}
}

// TestExposureChecks: the secret checks, and only they, are exposures (the catalog's "Secrets
// are exposures"): their FAILED results stay active after the secret is gone.
func TestExposureChecks(t *testing.T) {
	want := []string{"userdata-secret", "userdata-cached-secret", "cred-long-lived-key", "cred-session-key", "cred-process-env", "secret-in-local-file"}
	var got []string
	for _, c := range Catalog() {
		if c.Exposure != IsExposure(c.ID) {
			t.Errorf("%s: Exposure %v, IsExposure %v", c.ID, c.Exposure, IsExposure(c.ID))
		}
		if c.Exposure {
			got = append(got, c.ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("exposure checks %v, want %v", got, want)
	}
}
