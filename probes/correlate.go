package probes

import "fmt"

// Correlation raises one check's FAILED results because of what another check found: the
// catalog's "raised when" column as data. Adding a correlation is adding a row to
// Correlations, not new mechanism.
type Correlation struct {
	// Raise is the check whose FAILED results are raised.
	Raise string
	// When is the check whose FAILED result triggers the raise.
	When string
	// To is the severity raised to; a result already at or above it is left alone.
	To Severity
	// Why is appended to the raised result's reason.
	Why string
	// Match, when set, narrows the rule to pairs it accepts (e.g. the same port); nil means
	// any FAILED result of When raises every FAILED result of Raise.
	Match func(raised, trigger Result) bool
}

// Correlations returns the scan-level rules, applied in order, so a later rule may raise a
// result further than an earlier one.
func Correlations() []Correlation {
	return []Correlation{
		{
			Raise: "ssh-listening-public", When: "public-ipv4", To: High,
			Why: "the instance has a public IPv4 address, so the listener may be reachable from the internet",
		},
		{
			Raise: "ssh-listening-public", When: "sg-world-open-admin-port", To: Critical,
			Why:   "a security group of this instance opens this port to the whole internet",
			Match: samePort,
		},
	}
}

// Correlate applies Correlations to a whole scan's results (after the catalog filled the
// default severities) and returns them, raised where a rule says so. It never lowers a
// severity and only touches FAILED results. First it joins imds-metadata-options (the EC2
// API's view) with the imds probe's measurement, which may change that result's status, and
// imds-v1-enabled with the IMDS watcher's callers (imdswatch_join.go).
func Correlate(rs []Result) []Result {
	rs = joinMetadataOptions(rs)
	rs = joinIMDSWatch(rs)
	for _, c := range Correlations() {
		for i := range rs {
			r := &rs[i]
			if r.Check != c.Raise || r.Status != Failed || r.Severity >= c.To {
				continue
			}
			for _, t := range rs {
				if t.Check != c.When || t.Status != Failed || (c.Match != nil && !c.Match(*r, t)) {
					continue
				}
				r.Severity = c.To
				r.Reason = fmt.Sprintf("%s; raised to %s: %s", r.Reason, c.To, c.Why)
				by, _ := r.Evidence["raised_by"].([]string)
				*r = r.With("raised_by", append(by[:len(by):len(by)], t.Check))
				break
			}
		}
	}
	return rs
}

// samePort matches results whose evidence names the same port (an sshd listener and a
// world-open security group rule).
func samePort(a, b Result) bool {
	pa, ok := evidenceInt(a.Evidence["port"])
	pb, ok2 := evidenceInt(b.Evidence["port"])
	return ok && ok2 && pa == pb
}
