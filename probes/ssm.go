package probes

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ec2sec/ec2sec/probes/metadata"
)

// SSMProbe checks that the instance can be managed through AWS Systems Manager: the SSM
// Agent is installed, running and enabled at boot, healthy by its own log, and can reach
// the ssm, ssmmessages and ec2messages endpoints, the way `ssm-cli get-diagnostics` does,
// but on every scan and reported centrally.
type SSMProbe struct{}

// Name implements Probe.
func (SSMProbe) Name() string { return "ssm" }

// SSMAgentMinVersion is the oldest SSM Agent ssm-agent-unhealthy accepts. It is a policy
// floor, not a compatibility limit: agent 3.2 (2022) and later carry the current Session
// Manager and credential-refresh behaviour; raise the floor as releases age.
const SSMAgentMinVersion = "3.2.0.0"

// ssmLogTail bounds how much of each agent log is read: the end of the file holds the last
// 24 hours on any healthy agent, and a log flooded with errors is already a finding.
const ssmLogTail = 1 << 20

// ssmErrorWindow is how far back log errors count.
const ssmErrorWindow = 24 * time.Hour

const ssmDocs = "https://docs.aws.amazon.com/systems-manager/latest/userguide/ssm-agent.html"

// Checks implements Probe.
func (SSMProbe) Checks() []Check {
	return []Check{
		{
			ID: "ssm-agent-missing", Probe: "ssm", Severity: High,
			Title:      "The SSM Agent is not installed",
			FailedWhen: "no SSM Agent installed",
			Practices:  []int{5, 9}, SecurityHub: []string{"SSM.1"},
			Remediation: Remediation{
				Text: "Install the SSM Agent (preinstalled on Amazon Linux, Ubuntu and Windows AMIs; otherwise from the regional S3 bucket or snap), enable it at boot, and attach an instance profile with AmazonSSMManagedInstanceCore.",
				URL:  "https://docs.aws.amazon.com/systems-manager/latest/userguide/manually-install-ssm-agent-linux.html",
			},
		},
		{
			ID: "ssm-agent-not-running", Probe: "ssm", Severity: High,
			Title:      "The SSM Agent is installed but not running or not enabled at boot",
			FailedWhen: "installed but not running or not enabled at boot",
			Practices:  []int{5, 9}, SecurityHub: []string{"SSM.1"},
			Remediation: Remediation{
				Text: "Enable and start the agent: systemctl enable --now amazon-ssm-agent (snap: snap start --enable amazon-ssm-agent; Windows: Set-Service AmazonSSMAgent -StartupType Automatic; Start-Service AmazonSSMAgent).",
				URL:  ssmDocs,
			},
		},
		{
			ID: "ssm-endpoints-unreachable", Probe: "ssm", Severity: High,
			Title:      "An SSM endpoint (ssm, ssmmessages, ec2messages) of the region cannot be reached",
			FailedWhen: "the ssm, ssmmessages or ec2messages endpoint of the region cannot be reached (DNS or TCP 443, time-bounded)",
			Practices:  []int{5, 7},
			Remediation: Remediation{
				Text: "Give the subnet a route to the endpoints: interface VPC endpoints for ssm, ssmmessages and ec2messages (private DNS enabled, security group allowing 443 from the instance), or a NAT gateway; check DNS resolution and outbound 443 in security groups and network ACLs.",
				URL:  "https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-create-vpc.html",
			},
		},
		{
			ID: "ssm-agent-unhealthy", Probe: "ssm", Severity: Medium,
			Title:      "The SSM Agent logs recent credential, access or health-ping errors, or is older than " + SSMAgentMinVersion,
			FailedWhen: "recent errors in the agent log (credentials, access denied, health ping failures) or an agent too old",
			Practices:  []int{5},
			Remediation: Remediation{
				Text: "Check the instance profile (AmazonSSMManagedInstanceCore), IMDS reachability and the endpoints (ssm-cli get-diagnostics), read /var/log/amazon/ssm/errors.log, and update the agent (AWS-UpdateSSMAgent).",
				URL:  "https://docs.aws.amazon.com/systems-manager/latest/userguide/troubleshooting-ssm-agent.html",
			},
		},
	}
}

// ssmLayout is where one platform keeps the agent.
type ssmLayout struct {
	binaries []string
	units    []string // systemd units whose wants links mean "enabled at boot"
	logs     []string
	config   []string // amazon-ssm-agent.json, whose endpoint overrides the agent uses
	// notEnabled says what "not enabled at boot" means on the platform.
	notEnabled string
}

var ssmLinux = ssmLayout{
	binaries:   []string{"/usr/bin/amazon-ssm-agent", "/snap/amazon-ssm-agent/current/amazon-ssm-agent", "/usr/sbin/amazon-ssm-agent"},
	units:      []string{"amazon-ssm-agent.service", "snap.amazon-ssm-agent.amazon-ssm-agent.service"},
	logs:       []string{"/var/log/amazon/ssm/amazon-ssm-agent.log", "/var/log/amazon/ssm/errors.log"},
	config:     []string{"/etc/amazon/ssm/amazon-ssm-agent.json", "/snap/amazon-ssm-agent/current/amazon-ssm-agent.json"},
	notEnabled: "no systemd wants link for amazon-ssm-agent.service or snap.amazon-ssm-agent.amazon-ssm-agent.service",
}

var ssmWindows = ssmLayout{
	binaries:   []string{"/Program Files/Amazon/SSM/amazon-ssm-agent.exe"},
	logs:       []string{"/ProgramData/Amazon/SSM/Logs/amazon-ssm-agent.log", "/ProgramData/Amazon/SSM/Logs/errors.log"},
	config:     []string{"/Program Files/Amazon/SSM/amazon-ssm-agent.json"},
	notEnabled: "the start type of service AmazonSSMAgent is not Automatic",
}

// ssmState is what the probe learnt about the local agent.
type ssmState struct {
	layout    ssmLayout
	installed []string // binaries found (or "service AmazonSSMAgent")
	running   *bool    // nil: processes not visible
	pids      []int
	enabled   *bool // nil: cannot tell
	enabledBy []string
	note      string // why running/enabled could not be seen
}

// Run implements Probe.
func (SSMProbe) Run(ctx context.Context, env *Env) ([]Result, error) {
	st := ssmLocal(env)
	out := []Result{ssmMissing(st), ssmNotRunning(st), ssmUnhealthy(env, st)}
	return append(out, ssmReachability(ctx, env, st.layout)...), nil
}

func ssmLocal(env *Env) ssmState {
	if runtime.GOOS == "windows" {
		return ssmLocalWindows(env)
	}
	st := ssmState{layout: ssmLinux}
	for _, b := range st.layout.binaries {
		if fi, err := env.FS.Stat(b); err == nil && fi.Mode().IsRegular() {
			st.installed = append(st.installed, b)
		}
	}
	if env.Proc != "" {
		table := env.procTable()
		p := table.FS()
		if procs, err := table.Procs(); err == nil {
			for _, pr := range procs {
				// comm is cut to 15 characters: "amazon-ssm-agen".
				if pr.Comm == "amazon-ssm-agen" || pr.Comm == "amazon-ssm-agent" {
					st.pids = append(st.pids, pr.PID)
				}
			}
			if len(st.pids) == 0 {
				// Not by name: an agent started through a link of another name, or renamed, is
				// known by its executable. Only now, as reading every exe link costs a system
				// call per process.
				for _, pr := range procs {
					if path.Base(strings.TrimSuffix(p.Exe(pr.PID), " (deleted)")) == "amazon-ssm-agent" {
						st.pids = append(st.pids, pr.PID)
					}
				}
			}
			running := len(st.pids) > 0
			st.running = &running
		} else {
			st.note = "cannot list processes: " + err.Error()
		}
	} else {
		st.note = "processes are not visible without a procfs (--proc)"
	}
	for _, u := range st.layout.units {
		for _, dir := range systemdUnitDirs {
			links, _ := env.FS.Glob(path.Join(dir, "*.wants", u), 8)
			st.enabledBy = append(st.enabledBy, links...)
		}
	}
	enabled := len(st.enabledBy) > 0
	st.enabled = &enabled
	return st
}

func ssmMissing(st ssmState) Result {
	const check = "ssm-agent-missing"
	if len(st.installed) == 0 {
		return NewResult(check, Failed, "", "no SSM Agent is installed: looked for "+strings.Join(st.layout.binaries, ", ")).
			With("looked_for", st.layout.binaries)
	}
	return NewResult(check, Passed, st.installed[0], "the SSM Agent is installed at "+strings.Join(st.installed, ", ")).
		With("installed", st.installed)
}

func ssmNotRunning(st ssmState) Result {
	const check = "ssm-agent-not-running"
	if len(st.installed) == 0 {
		return NewResult(check, NotAvailable, "", "the SSM Agent is not installed (ssm-agent-missing reports it)")
	}
	r := NewResult(check, Passed, st.installed[0], "")
	if st.running != nil {
		r = r.With("running", *st.running).With("pids", nonNilInts(st.pids))
	} else {
		r = r.With("running", "unknown")
	}
	if st.enabled != nil {
		r = r.With("enabled", *st.enabled).With("enabled_by", nonNil(st.enabledBy))
	} else {
		r = r.With("enabled", "unknown")
	}
	var problems []string
	if st.running != nil && !*st.running {
		problems = append(problems, "not running")
	}
	if st.enabled != nil && !*st.enabled {
		problems = append(problems, "not enabled at boot ("+st.layout.notEnabled+")")
	}
	switch {
	case len(problems) > 0:
		r.Status = Failed
		r.Reason = "the SSM Agent is installed but " + strings.Join(problems, " and ")
	case st.running == nil && st.enabled == nil:
		r.Status = NotAvailable
		r.Reason = "cannot tell whether the SSM Agent runs or is enabled: " + st.note
	case st.running == nil:
		r.Reason = "the SSM Agent is enabled at boot (" + st.note + ")"
	case len(st.pids) > 0:
		r.Reason = fmt.Sprintf("the SSM Agent is running (pid %s) and enabled at boot", joinInts(st.pids))
	default:
		r.Reason = "the SSM Agent is running and enabled at boot"
	}
	if st.enabled == nil && st.note != "" && r.Status == Passed {
		r.Reason += " (" + st.note + ")"
	}
	return r
}

func nonNilInts(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

func joinInts(s []int) string {
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ", ")
}

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
	now := env.Now()
	since := now.Add(-ssmErrorWindow)
	kinds := map[string]*ssmLogErrors{}
	other := 0
	version := ""
	var read, problems []string
	for _, name := range st.layout.logs {
		data, err := tailFile(env, name, ssmLogTail)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				problems = append(problems, err.Error())
			}
			continue
		}
		read = append(read, name)
		for _, line := range strings.Split(string(data), "\n") {
			// Literal checks first: the regexps are the costly part of reading a busy log,
			// and a line without these words cannot match them.
			if strings.Contains(line, "Agent version") || strings.Contains(line, "Agent Version") || strings.Contains(line, "amazon-ssm-agent - v") {
				if m := ssmVersionLine.FindStringSubmatch(line); m != nil {
					version = m[1]
				}
			}
			if !strings.Contains(line, " ERROR") && !strings.Contains(line, " CRITICAL") {
				continue
			}
			m := ssmLogLine.FindStringSubmatch(line)
			if m == nil || (m[2] != "ERROR" && m[2] != "CRITICAL") {
				continue
			}
			t, err := time.ParseInLocation("2006-01-02 15:04:05", m[1], now.Location())
			if err != nil || t.Before(since) || t.After(now.Add(time.Hour)) {
				continue
			}
			kind := ""
			for _, k := range ssmErrorKinds {
				if k.re.MatchString(line) {
					kind = k.kind
					break
				}
			}
			if kind == "" {
				other++
				continue
			}
			e := kinds[kind]
			if e == nil {
				e = &ssmLogErrors{}
				kinds[kind] = e
			}
			e.Count++
			if ts := t.UTC().Format(time.RFC3339); ts > e.LastSeen {
				e.LastSeen, e.File = ts, name
			}
		}
	}
	if len(read) == 0 {
		reason := "no SSM Agent log at " + strings.Join(st.layout.logs, " or ")
		if len(problems) > 0 {
			reason = "cannot read the SSM Agent logs: " + strings.Join(problems, "; ")
		}
		return NewResult(check, NotAvailable, st.layout.logs[0], reason)
	}
	r := NewResult(check, Passed, st.layout.logs[0], "").
		With("logs_read", read).With("window_hours", int(ssmErrorWindow.Hours())).
		With("min_version", SSMAgentMinVersion).With("other_errors", other)
	if len(problems) > 0 {
		r = r.With("log_problems", problems)
	}
	var why []string
	if len(kinds) > 0 {
		ev := map[string]any{}
		var names []string
		for _, k := range ssmErrorKinds {
			if e := kinds[k.kind]; e != nil {
				ev[k.kind] = *e
				names = append(names, fmt.Sprintf("%d %s", e.Count, strings.ReplaceAll(k.kind, "_", " ")))
			}
		}
		r = r.With("errors", ev)
		why = append(why, "the agent logged errors in the last 24 h: "+strings.Join(names, ", "))
	}
	if version == "" {
		r = r.With("version", "unknown")
	} else {
		r = r.With("version", version)
		if compareVersions(version, SSMAgentMinVersion) < 0 {
			why = append(why, fmt.Sprintf("agent version %s is older than %s", version, SSMAgentMinVersion))
		}
	}
	if len(why) > 0 {
		r.Status = Failed
		r.Reason = strings.Join(why, "; ")
		return r
	}
	r.Reason = "no credential, access or health-ping errors in the agent log in the last 24 h"
	if version != "" {
		r.Reason += ", agent version " + version
	} else {
		r.Reason += " (the agent version is not in the part of the log read)"
	}
	return r
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

// ssmService is one endpoint the agent needs: its service name, the SDK's environment
// override, and the key of the agent's own endpoint override in amazon-ssm-agent.json.
type ssmService struct{ name, envVar, agentKey string }

var ssmServices = []ssmService{
	{"ssm", "AWS_ENDPOINT_URL_SSM", "Ssm"},
	{"ssmmessages", "AWS_ENDPOINT_URL_SSMMESSAGES", "Mgs"},
	{"ec2messages", "AWS_ENDPOINT_URL_EC2MESSAGES", "Mds"},
}

// ssmTarget is where one endpoint is checked and why there.
type ssmTarget struct {
	svc        ssmService
	host, port string
	source     string
	err        string // could not name a target
}

func ssmTargets(env *Env, layout ssmLayout) []ssmTarget {
	getenv := env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	agentCfg := ssmAgentEndpoints(env, layout)
	var out []ssmTarget
	for _, s := range ssmServices {
		t := ssmTarget{svc: s}
		switch {
		case getenv(s.envVar) != "":
			t.host, t.port, t.err = hostPort(getenv(s.envVar))
			t.source = s.envVar
		case getenv("AWS_ENDPOINT_URL") != "":
			t.host, t.port, t.err = hostPort(getenv("AWS_ENDPOINT_URL"))
			t.source = "AWS_ENDPOINT_URL"
		case agentCfg[s.agentKey] != "":
			t.host, t.port, t.err = hostPort(agentCfg[s.agentKey])
			t.source = "amazon-ssm-agent.json " + s.agentKey + ".Endpoint"
		case env.Identity.Region != "":
			// Region and domain come from IMDS: checked before a name is made of them, so
			// a hostile IMDS cannot have ssm.<region>.attacker.example resolved.
			domain := cmp.Or(env.Identity.Domain, "amazonaws.com")
			switch {
			case !metadata.ValidRegion(env.Identity.Region):
				t.err = "the region IMDS gave is not an AWS region name (such as us-east-1): no endpoint name is made of it"
			case !metadata.KnownDomain(domain):
				t.err = "the domain IMDS gave (services/domain) is not the DNS suffix of an AWS partition (amazonaws.com, amazonaws.com.cn, amazonaws.eu, c2s.ic.gov, sc2s.sgov.gov, cloud.adc-e.uk, csp.hci.ic.gov): no name under it is resolved"
			default:
				t.host, t.port = fmt.Sprintf("%s.%s.%s", s.name, env.Identity.Region, domain), "443"
				t.source = "region " + env.Identity.Region
			}
		default:
			reason := env.Identity.Reason
			if reason == "" {
				reason = "the region is unknown"
			}
			t.err = "no region to name the endpoint: " + reason
		}
		out = append(out, t)
	}
	return out
}

// ssmAgentEndpoints reads the endpoint overrides of the agent's own config, which is where
// the agent connects: {"Ssm":{"Endpoint":...},"Mgs":{...},"Mds":{...}}.
func ssmAgentEndpoints(env *Env, layout ssmLayout) map[string]string {
	out := map[string]string{}
	for _, name := range layout.config {
		b, _, err := env.FS.ReadFile(name, 256<<10)
		if err != nil {
			continue
		}
		var cfg map[string]json.RawMessage
		if json.Unmarshal(b, &cfg) != nil {
			continue
		}
		for _, s := range ssmServices {
			var sec struct{ Endpoint string }
			if raw, ok := cfg[s.agentKey]; ok && json.Unmarshal(raw, &sec) == nil && sec.Endpoint != "" {
				out[s.agentKey] = sec.Endpoint
			}
		}
		return out
	}
	return out
}

// hostPort takes "https://host[:port][/path]" or "host[:port]" and returns host and port
// (443 by default, 80 for http).
func hostPort(s string) (host, port, errMsg string) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	// Messages never quote the value as given: an endpoint URL may carry user:password@
	// (or a token in its path). What they show is the scheme and host[:port] only.
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" {
		return "", "", "bad endpoint: not [https://]host[:port][/path] (the value is not shown: it may hold credentials)"
	}
	port = u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	// url.Parse takes any digits as a port; the dialer would refuse them and the endpoint
	// would look unreachable instead of misconfigured.
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Sprintf("bad port in endpoint %s://%s", u.Scheme, u.Host)
	}
	return u.Hostname(), port, ""
}

// ssmReachability resolves and connects to each endpoint concurrently, each within
// env.DialTimeout (2 s) for DNS and TCP together. It never sends a byte: a TCP handshake is
// what a private subnet without VPC endpoints lacks.
func ssmReachability(ctx context.Context, env *Env, layout ssmLayout) []Result {
	if env.Offline {
		return []Result{NewResult("ssm-endpoints-unreachable", NotAvailable, "", env.Identity.Reason)}
	}
	targets := ssmTargets(env, layout)
	out := make([]Result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { out[i] = ssmReach(ctx, env, t) })
	}
	wg.Wait()
	return out
}

func ssmReach(ctx context.Context, env *Env, t ssmTarget) Result {
	const check = "ssm-endpoints-unreachable"
	if t.err != "" {
		return NewResult(check, NotAvailable, t.svc.name+" endpoint", t.svc.name+": "+t.err).With("service", t.svc.name)
	}
	timeout := env.DialTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	// No fallback to the system's resolver or dialer: the scan injects both, and an Env
	// built without them (a test) must not reach the network by accident.
	resolver, dial := env.Resolver, env.Dial
	if resolver == nil || dial == nil {
		return NewResult(check, NotAvailable, t.svc.name+" endpoint", "no resolver or dialer was given to the probe").With("service", t.svc.name)
	}
	target := net.JoinHostPort(t.host, t.port)
	// The service is part of the resource: overrides may point all three at one address.
	r := NewResult(check, Passed, t.svc.name+" endpoint "+target, "").
		With("service", t.svc.name).With("host", t.host).With("port", t.port).With("source", t.source)
	fail := func(stage string, err error) Result {
		r.Status = Failed
		r.Reason = fmt.Sprintf("%s endpoint %s: %s failed: %v", t.svc.name, target, stage, err)
		return r.With("stage", stage).With("error", err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()

	addrs := []string{t.host}
	if _, err := netip.ParseAddr(t.host); err != nil {
		addrs, err = resolver.LookupHost(ctx, t.host)
		if err != nil {
			return fail("DNS lookup", err)
		}
		r = r.With("addresses", addrs)
		r = r.With("private_addresses", slices.ContainsFunc(addrs, func(a string) bool {
			ip, err := netip.ParseAddr(a)
			return err == nil && ip.IsPrivate()
		}))
	}
	var lastErr error
	for _, a := range addrs {
		c, err := dial(ctx, "tcp", net.JoinHostPort(a, t.port))
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		c.Close()
		r = r.With("connected_to", net.JoinHostPort(a, t.port)).With("duration_ms", time.Since(start).Milliseconds())
		r.Reason = fmt.Sprintf("%s endpoint %s reached (TCP %s)", t.svc.name, target, net.JoinHostPort(a, t.port))
		return r
	}
	if lastErr == nil {
		lastErr = errors.New("no address")
	}
	return fail("TCP connect", lastErr)
}

// ssmWindowsServiceName is the agent's Windows service.
const ssmWindowsServiceName = "AmazonSSMAgent"

// ssmServiceState is what the Windows service manager says of the agent's service.
type ssmServiceState struct {
	exists, running, automatic bool
}

// ssmLocalWindows asks the service manager (live system only) and looks for the binary under
// the root. An offline Windows image has no service manager to ask: running is unknown and
// enabled cannot be read without parsing its registry hive, so both stay unknown.
func ssmLocalWindows(env *Env) ssmState {
	st := ssmState{layout: ssmWindows}
	for _, b := range st.layout.binaries {
		if fi, err := env.FS.Stat(b); err == nil && fi.Mode().IsRegular() {
			st.installed = append(st.installed, b)
		}
	}
	if !liveWindowsRoot(env) {
		st.note = "the root " + env.Root + " is not this system's drive: an offline image has no service manager to ask"
		return st
	}
	svc, err := querySSMService(ssmWindowsServiceName)
	if err != nil {
		st.note = "cannot query the Windows service " + ssmWindowsServiceName + ": " + err.Error()
		return st
	}
	if svc.exists {
		if len(st.installed) == 0 {
			st.installed = append(st.installed, "service "+ssmWindowsServiceName)
		}
		st.running, st.enabled = &svc.running, &svc.automatic
		if svc.automatic {
			st.enabledBy = []string{"service " + ssmWindowsServiceName + " start type automatic"}
		}
	}
	return st
}

// liveWindowsRoot reports whether the scan looks at the running Windows system (its root is
// the system drive) rather than a mounted image, whose services the local manager does not know.
func liveWindowsRoot(env *Env) bool {
	if env.Getenv == nil {
		return false
	}
	drive := env.Getenv("SystemDrive")
	if drive == "" {
		drive = "C:"
	}
	root := strings.TrimRight(strings.ReplaceAll(env.Root, "/", `\`), `\`)
	return strings.EqualFold(root, drive) || env.Root == "/"
}
