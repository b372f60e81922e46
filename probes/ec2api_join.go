package probes

import (
	"fmt"
	"strings"
)

// joinMetadataOptions compares imds-metadata-options (the API's MetadataOptions, from the
// ec2api probe) with what the imds probe measured on the wire (imds-v1-enabled's
// http_status, imds-hop-limit's hop_limit). The probes run concurrently, so the join is a
// scan-level step run with the correlations, after every probe finished.
//
// When the two disagree the result FAILs and says which side is wrong: the weaker one. An API
// setting looser than what the host sees is wrong (something local happens to enforce more,
// which other network paths such as containers may not pass through); a host that sees less
// protection than the API promises is wrong (a proxy, redirect or emulator answers for IMDS).
// A change the API reports as pending makes a disagreement a WARNING: the next scan decides.
func joinMetadataOptions(rs []Result) []Result {
	var v1, hop *Result
	for i := range rs {
		switch rs[i].Check {
		case "imds-v1-enabled":
			v1 = &rs[i]
		case "imds-hop-limit":
			hop = &rs[i]
		}
	}
	for i := range rs {
		r := &rs[i]
		if r.Check != "imds-metadata-options" || r.Status == NotAvailable {
			continue
		}
		*r = joinOne(*r, v1, hop)
	}
	return rs
}

// disagreement is one setting where the API and the measurement differ.
type disagreement struct {
	Setting  string `json:"setting"`
	API      string `json:"api"`
	Measured string `json:"measured"`
	Wrong    string `json:"wrong"` // "api" or "host"
}

func joinOne(r Result, v1, hop *Result) Result {
	tokens, _ := r.Evidence[evHTTPTokens].(string)
	endpoint, _ := r.Evidence[evHTTPEndpoint].(string)
	state, _ := r.Evidence[evOptionsState].(string)
	apiHop, haveAPIHop := evidenceInt(r.Evidence[evHopLimit])
	endpointOff := endpoint == "disabled"
	apiV1 := !endpointOff && tokens != "required"

	var diffs []disagreement
	var why []string
	measured := false
	if st, ok := measuredInt(v1, "http_status"); ok {
		measured = true
		r = r.With("measured_http_status", st)
		switch {
		case endpointOff && st != 403:
			diffs = append(diffs, disagreement{"HttpEndpoint", "disabled", fmt.Sprintf("IMDS answered HTTP %d", st), "host"})
			why = append(why, fmt.Sprintf("the API says the metadata endpoint is disabled, yet something answers IMDS requests on this host (HTTP %d): the host side is wrong (a local proxy or emulator answers for IMDS)", st))
		case !endpointOff && st == 403:
			diffs = append(diffs, disagreement{"HttpEndpoint", cmpOrUnset(endpoint), "IMDS answered 403", "api"})
			why = append(why, "the host sees the metadata endpoint turned off (403), but the API says HttpEndpoint is enabled: the API side is wrong (something local blocks IMDS, which other network paths may bypass)")
		case st == 200 && !apiV1:
			diffs = append(diffs, disagreement{"HttpTokens", cmpOrUnset(tokens), "a GET without token was answered (200)", "host"})
			why = append(why, "the API says HttpTokens is required, yet IMDS on this host answered a GET without a token: the host side is wrong (a local proxy, redirect or emulator answers for IMDS without enforcing tokens)")
		case st == 401 && apiV1:
			diffs = append(diffs, disagreement{"HttpTokens", cmpOrUnset(tokens), "a GET without token was refused (401)", "api"})
			why = append(why, fmt.Sprintf("IMDS on this host refused a GET without a token, but the API says HttpTokens is %s: the API side is wrong (something local enforces tokens, which containers and other network paths may bypass)", cmpOrUnset(tokens)))
		}
	}
	if n, ok := measuredInt(hop, "hop_limit"); ok && haveAPIHop && !endpointOff {
		measured = true
		r = r.With("measured_hop_limit", n)
		switch {
		case n > apiHop:
			diffs = append(diffs, disagreement{"HttpPutResponseHopLimit", fmt.Sprint(apiHop), fmt.Sprint(n), "host"})
			why = append(why, fmt.Sprintf("token responses arrive here with hop limit %d, above the API's %d: the host side is wrong (something other than IMDS hands out tokens)", n, apiHop))
		case n < apiHop:
			diffs = append(diffs, disagreement{"HttpPutResponseHopLimit", fmt.Sprint(apiHop), fmt.Sprint(n), "api"})
			why = append(why, fmt.Sprintf("the API's hop limit is %d, but token responses arrive here with hop limit %d: the API side is wrong (the setting is looser than what this host sees; something local answers for IMDS)", apiHop, n))
		}
	}

	switch {
	case len(diffs) > 0:
		r = r.With("disagreements", diffs)
		reason := "the API's MetadataOptions and the imds probe's measurement disagree: " + strings.Join(why, "; ")
		if state == "pending" {
			// The API shows the new values before IMDS serves them.
			r.Status, r.Severity = Warning, Low
			r.Reason = reason + " (the API reports the change as pending; the next scan will tell)"
			return r
		}
		r.Status = Failed
		if c, ok := Lookup(r.Check); ok && r.Severity < c.Severity {
			r.Severity = c.Severity
		}
		r.Reason = reason
	case measured:
		r = r.With("measured_agrees", true)
		r.Reason += "; the imds probe measured the same on the wire"
	default:
		r = r.With("measured_agrees", nil)
		r.Reason += "; not compared with the host: the imds probe measured nothing (" + notMeasured(v1, hop) + ")"
	}
	return r
}

// measuredInt returns an integer evidence value of a result that looked (PASSED or FAILED).
func measuredInt(r *Result, key string) (int, bool) {
	if r == nil || (r.Status != Passed && r.Status != Failed) {
		return 0, false
	}
	return evidenceInt(r.Evidence[key])
}

func notMeasured(v1, hop *Result) string {
	if v1 == nil && hop == nil {
		return "the imds probe did not run"
	}
	for _, r := range []*Result{v1, hop} {
		if r != nil && r.Reason != "" {
			return r.Reason
		}
	}
	return "no measurement"
}

// evidenceInt reads an integer evidence value, as a probe stored it (int) or as JSON decoded
// it (float64).
func evidenceInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case float64:
		return int(n), n == float64(int(n))
	}
	return 0, false
}

func cmpOrUnset(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}
