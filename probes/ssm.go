package probes

import (
	"context"
	"fmt"
	"path"
	"runtime"
	"strconv"
	"strings"
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
