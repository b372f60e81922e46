package probes

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ec2sec/ec2sec/probes/imdswatch"
)

// joinIMDSWatch joins the imds probe's verdict on IMDSv1 with what the watcher saw:
//   - imds-v1-enabled FAILED and no v1 caller over a full 7-day window: its remediation says
//     IMDSv2 can be required now; with v1 callers, it names them first.
//   - imds-v1-enabled PASSED because IMDS answered 401 (tokens required): every v1 caller is
//     software that is broken today (its requests fail), and its result says so.
func joinIMDSWatch(rs []Result) []Result {
	var v1Enabled *Result
	var callers []*Result
	var pass *Result
	for i := range rs {
		r := &rs[i]
		switch {
		case r.Check == "imds-v1-enabled":
			v1Enabled = r
		case r.Check == "imds-v1-callers" && r.Status == Failed:
			callers = append(callers, r)
		case r.Check == "imds-v1-callers" && r.Status == Passed:
			pass = r
		}
	}
	if v1Enabled == nil {
		return rs
	}
	switch {
	case v1Enabled.Status == Failed && len(callers) > 0:
		names := make([]string, 0, len(callers))
		for _, c := range callers {
			names = append(names, callerName(*c))
		}
		v1Enabled.Remediation.Text = fmt.Sprintf("Requiring IMDSv2 now would break %d IMDSv1 caller(s) seen by the watcher: %s. Update them first (see imds-v1-callers), then: %s",
			len(callers), strings.Join(names, "; "), v1Enabled.Remediation.Text)
		*v1Enabled = v1Enabled.With("v1_callers", len(callers))
	case v1Enabled.Status == Failed && pass != nil:
		secs, _ := evidenceInt(pass.Evidence["window_seconds"])
		if time.Duration(secs)*time.Second >= imdswatch.Window {
			v1Enabled.Remediation.Text = fmt.Sprintf("No process called IMDS without a token in the last 7 days (the watcher saw the whole window): IMDSv2 can be required now. %s", v1Enabled.Remediation.Text)
			*v1Enabled = v1Enabled.With("v1_callers", 0)
		}
	case v1Enabled.Status == Passed && isStatus(v1Enabled.Evidence["http_status"], http.StatusUnauthorized):
		for _, c := range callers {
			c.Reason += "; IMDSv2 is required on this host, so these requests fail with 401: this software is broken today"
			*c = c.With("broken", true)
		}
	}
	return rs
}

// callerName is the short name of a v1 caller result: its executable (or comm) and pid.
func callerName(r Result) string {
	name, _ := r.Evidence["exe"].(string)
	if name == "" {
		name, _ = r.Evidence["comm"].(string)
	}
	pid, _ := evidenceInt(r.Evidence["pid"])
	where := ""
	if c, _ := r.Evidence["container"].(string); c != "" {
		where = fmt.Sprintf(", container %.12s", c)
	} else if u, _ := r.Evidence["unit"].(string); u != "" {
		where = ", unit " + u
	}
	return fmt.Sprintf("%s (pid %d%s)", name, pid, where)
}

func isStatus(v any, code int) bool {
	n, ok := evidenceInt(v)
	return ok && n == code
}
