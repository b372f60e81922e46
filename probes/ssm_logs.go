package probes

// The ssm probe's ssm-agent-unhealthy check, read from the agent's log: recent errors by kind,
// and the agent's version.

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ssmLogTail bounds how much of each agent log is read: the end of the file holds the last
// 24 hours on any healthy agent, and a log flooded with errors is already a finding.
const ssmLogTail = 1 << 20

// ssmErrorWindow is how far back log errors count.
const ssmErrorWindow = 24 * time.Hour

// ssmLogLine is "2024-05-01 12:34:56 ERROR ..." (seelog's default format), fraction optional.
var ssmLogLine = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.\d+)? (ERROR|WARN|INFO|DEBUG|CRITICAL)\b`)

// ssmVersionLine finds the agent's version in its startup lines, e.g.
// "amazon-ssm-agent - v3.3.40.0" or "Agent version: 3.2.582.0".
var ssmVersionLine = regexp.MustCompile(`(?:amazon-ssm-agent - v|SSM Agent version:? v?|Agent Version:? v?)(\d+\.\d+\.\d+(?:\.\d+)?)`)

// ssmErrorKinds classify ERROR lines; the first match wins. Only these make the agent
// unhealthy: any agent logs some other errors now and then.
var ssmErrorKinds = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"access_denied", regexp.MustCompile(`(?i)AccessDenied|not authorized to perform|UnauthorizedOperation|InvalidInstanceId`)},
	{"credentials", regexp.MustCompile(`(?i)NoCredentialProviders|no valid credentials|unable to (?:retrieve|load|get) credentials|failed to (?:get|retrieve|refresh|load) (?:role |instance )?credentials|EC2RoleRequestError|credentials (?:not found|are missing|expired)|ExpiredToken`)},
	{"health_ping", regexp.MustCompile(`(?i)\[HealthCheck\]|health ?ping|UpdateInstanceInformation`)},
	{"connectivity", regexp.MustCompile(`(?i)dial tcp|i/o timeout|no such host|connection refused|TLS handshake timeout|RequestError: send request failed`)},
}

// ssmLogErrors is what the log says about one kind of error in the window.
type ssmLogErrors struct {
	Count    int    `json:"count"`
	LastSeen string `json:"last_seen"`
	File     string `json:"file"`
}

func ssmUnhealthy(env *Env, st ssmState) Result {
	const check = "ssm-agent-unhealthy"
	if len(st.installed) == 0 {
		return NewResult(check, NotAvailable, "", "the SSM Agent is not installed (ssm-agent-missing reports it)")
	}
	logs := scanSSMLogs(env, st.layout.logs)
	if len(logs.read) == 0 {
		reason := "no SSM Agent log at " + strings.Join(st.layout.logs, " or ")
		if len(logs.problems) > 0 {
			reason = "cannot read the SSM Agent logs: " + strings.Join(logs.problems, "; ")
		}
		return NewResult(check, NotAvailable, st.layout.logs[0], reason)
	}
	r := NewResult(check, Passed, st.layout.logs[0], "").
		With("logs_read", logs.read).With("window_hours", int(ssmErrorWindow.Hours())).
		With("min_version", SSMAgentMinVersion).With("other_errors", logs.other)
	if len(logs.problems) > 0 {
		r = r.With("log_problems", logs.problems)
	}
	var why []string
	if len(logs.kinds) > 0 {
		ev := map[string]any{}
		var names []string
		for _, k := range ssmErrorKinds {
			if e := logs.kinds[k.kind]; e != nil {
				ev[k.kind] = *e
				names = append(names, fmt.Sprintf("%d %s", e.Count, strings.ReplaceAll(k.kind, "_", " ")))
			}
		}
		r = r.With("errors", ev)
		why = append(why, "the agent logged errors in the last 24 h: "+strings.Join(names, ", "))
	}
	if logs.version == "" {
		r = r.With("version", "unknown")
	} else {
		r = r.With("version", logs.version)
		if compareVersions(logs.version, SSMAgentMinVersion) < 0 {
			why = append(why, fmt.Sprintf("agent version %s is older than %s", logs.version, SSMAgentMinVersion))
		}
	}
	if len(why) > 0 {
		r.Status = Failed
		r.Reason = strings.Join(why, "; ")
		return r
	}
	r.Reason = "no credential, access or health-ping errors in the agent log in the last 24 h"
	if logs.version != "" {
		r.Reason += ", agent version " + logs.version
	} else {
		r.Reason += " (the agent version is not in the part of the log read)"
	}
	return r
}

// ssmLogScan is what the agent's logs said within ssmErrorWindow.
type ssmLogScan struct {
	kinds    map[string]*ssmLogErrors // errors by kind (ssmErrorKinds)
	other    int                      // errors of no kind that counts
	version  string                   // the agent's version, from its startup lines
	read     []string                 // the logs read
	problems []string                 // why the others could not be (other than absence)
}

// scanSSMLogs reads the end (ssmLogTail) of each agent log and adds up its ERROR and
// CRITICAL lines of the last ssmErrorWindow by kind, and the agent's version.
func scanSSMLogs(env *Env, logs []string) *ssmLogScan {
	now := env.Now()
	since := now.Add(-ssmErrorWindow)
	s := &ssmLogScan{kinds: map[string]*ssmLogErrors{}}
	for _, name := range logs {
		data, err := tailFile(env, name, ssmLogTail)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.problems = append(s.problems, err.Error())
			}
			continue
		}
		s.read = append(s.read, name)
		for _, line := range strings.Split(string(data), "\n") {
			s.line(name, line, now, since)
		}
	}
	return s
}

// line adds one log line of the log name: a version it names, an error within the window.
func (s *ssmLogScan) line(name, line string, now, since time.Time) {
	// Literal checks first: the regexps are the costly part of reading a busy log,
	// and a line without these words cannot match them.
	if strings.Contains(line, "Agent version") || strings.Contains(line, "Agent Version") || strings.Contains(line, "amazon-ssm-agent - v") {
		if m := ssmVersionLine.FindStringSubmatch(line); m != nil {
			s.version = m[1]
		}
	}
	if !strings.Contains(line, " ERROR") && !strings.Contains(line, " CRITICAL") {
		return
	}
	m := ssmLogLine.FindStringSubmatch(line)
	if m == nil || (m[2] != "ERROR" && m[2] != "CRITICAL") {
		return
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05", m[1], now.Location())
	if err != nil || t.Before(since) || t.After(now.Add(time.Hour)) {
		return
	}
	kind := ""
	for _, k := range ssmErrorKinds {
		if k.re.MatchString(line) {
			kind = k.kind
			break
		}
	}
	if kind == "" {
		s.other++
		return
	}
	e := s.kinds[kind]
	if e == nil {
		e = &ssmLogErrors{}
		s.kinds[kind] = e
	}
	e.Count++
	if ts := t.UTC().Format(time.RFC3339); ts > e.LastSeen {
		e.LastSeen, e.File = ts, name
	}
}

// tailFile reads at most the last n bytes of a file under the root, from the first whole line.
func tailFile(env *Env, name string, n int64) ([]byte, error) {
	b, cut, err := env.FS.ReadTail(name, n)
	if err != nil {
		return nil, err
	}
	if cut {
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b, nil
}

// compareVersions compares dotted numeric versions ("3.2.582.0"); missing parts count as 0.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
