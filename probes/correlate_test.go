package probes

import (
	"slices"
	"strings"
	"testing"
)

func TestCorrelateRaisesPublicSSH(t *testing.T) {
	mk := func(check string, s Status, sev Severity, res string) Result {
		r := NewResult(check, s, res, "base reason")
		r.Severity = sev
		return r
	}
	cases := []struct {
		name string
		in   []Result
		want []Severity // severities after, in order
	}{
		{"public address raises every public listener", []Result{
			mk("ssh-listening-public", Failed, Medium, "tcp://0.0.0.0:22"),
			mk("ssh-listening-public", Failed, Medium, "tcp://[::]:22"),
			mk("public-ipv4", Failed, Medium, ""),
		}, []Severity{High, High, Medium}},
		{"no public address", []Result{
			mk("ssh-listening-public", Failed, Medium, "tcp://0.0.0.0:22"),
			mk("public-ipv4", Passed, Informational, ""),
		}, []Severity{Medium, Informational}},
		{"public-ipv4 not available", []Result{
			mk("ssh-listening-public", Failed, Medium, "tcp://0.0.0.0:22"),
			mk("public-ipv4", NotAvailable, Informational, ""),
		}, []Severity{Medium, Informational}},
		{"never lowers", []Result{
			mk("ssh-listening-public", Failed, Critical, "tcp://0.0.0.0:22"),
			mk("public-ipv4", Failed, Medium, ""),
		}, []Severity{Critical, Medium}},
		{"only FAILED results rise", []Result{
			mk("ssh-listening-public", Passed, Informational, ""),
			mk("public-ipv4", Failed, Medium, ""),
		}, []Severity{Informational, Medium}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := Correlate(slices.Clone(c.in))
			for i, r := range out {
				if r.Severity != c.want[i] {
					t.Errorf("%s %s: severity %s, want %s", r.Check, r.Resource, r.Severity, c.want[i])
				}
				raised := r.Severity != c.in[i].Severity
				if raised != strings.Contains(r.Reason, "raised to HIGH: the instance has a public IPv4 address") {
					t.Errorf("%s: reason %q does not match raised=%v", r.Check, r.Reason, raised)
				}
				if raised && !slices.Equal(r.Evidence["raised_by"].([]string), []string{"public-ipv4"}) {
					t.Errorf("raised_by %v", r.Evidence["raised_by"])
				}
			}
		})
	}
}

func TestCorrelationsNameCatalogChecks(t *testing.T) {
	for _, c := range Correlations() {
		for _, id := range []string{c.Raise, c.When} {
			if _, ok := Lookup(id); !ok && id != "sg-world-open-admin-port" {
				t.Errorf("correlation names unknown check %q", id)
			}
		}
		if c.To <= Informational || c.Why == "" {
			t.Errorf("correlation %+v: needs a severity and a reason", c)
		}
	}
}
