package probes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ec2sec/ec2sec/probes/imdswatch"
)

// IMDSWatchProbe reports what the IMDS watcher saw (probes/imdswatch): which process, user and
// container called IMDS without a session token, and who reached it from another network
// namespace, over the rolling 7-day window the `run` daemon keeps. It looks at nothing
// itself: Env.IMDSWatch hands it the window (the daemon's summary in the state dir, or the
// live table of `ec2sec imds-watch`).
type IMDSWatchProbe struct{}

// Name implements Probe.
func (IMDSWatchProbe) Name() string { return "imdswatch" }

// UsesSecrets implements agent.SecretsUser: command lines go through the secret detector.
func (IMDSWatchProbe) UsesSecrets() bool { return true }

const imdsTransitionDocs = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-metadata-transition-to-version-2.html"

// Checks implements Probe.
func (IMDSWatchProbe) Checks() []Check {
	return []Check{
		{
			ID: "imds-v1-callers", Probe: "imdswatch", Severity: High,
			Title:      "A process fetched IMDS without a session token (IMDSv1) in the observation window",
			FailedWhen: "a process fetched IMDS without a session token (IMDSv1), or got 401 for it because IMDSv2 is required, in the observation window",
			RaisedWhen: "CRITICAL when the call fetched role credentials (`iam/security-credentials/`)",
			Practices:  []int{1},
			Remediation: Remediation{
				Text: "Update the named software to an AWS SDK or tool that uses IMDSv2 tokens (or add the token header to its requests), then require IMDSv2 (--http-tokens required). CRITICAL when the call fetched role credentials.",
				URL:  imdsTransitionDocs,
			},
		},
		{
			ID: "imds-container-callers", Probe: "imdswatch", Severity: Medium,
			Title:      "A process in another network namespace (a container) reached IMDS in the observation window",
			FailedWhen: "a process in another network namespace (a container) reached IMDS in the observation window, so it can take the instance role's credentials",
			RaisedWhen: "HIGH when it fetched role credentials",
			Practices:  []int{1},
			Remediation: Remediation{
				Text: "Containers should get credentials from their own role (ECS task roles, EKS Pod Identity or IRSA), not the instance's: set the IMDS hop limit to 1 or block 169.254.169.254 from container networks. HIGH when the call fetched role credentials.",
				URL:  "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html",
			},
		},
	}
}

// Run implements Probe.
func (IMDSWatchProbe) Run(ctx context.Context, env *Env) ([]Result, error) {
	if env.Offline {
		return nil, errors.New("offline image: the IMDS watcher watches the running host")
	}
	if !env.Identity.Reachable {
		// Off EC2 there is no IMDS to call: a window without callers would say nothing.
		return nil, errors.New(env.Identity.Reason)
	}
	if env.IMDSWatch == nil {
		return nil, errors.New("no IMDS watch window: the watcher runs in ec2sec-imdswatch.service (ec2sec imds-watch --resident), the ec2sec run daemon or ec2sec imds-watch")
	}
	sum, err := env.IMDSWatch()
	if err != nil {
		return nil, err
	}
	now := env.Now()
	if sum == nil {
		return nil, errors.New("no IMDS watch window: nothing has watched IMDS on this host (ec2sec-imdswatch.service, or an ec2sec run daemon that can load the watcher, keeps its summary in the state dir)")
	}
	observed := sum.Observed(now)
	if observed <= 0 {
		if sum.Unavailable != "" {
			return nil, errors.New(sum.Unavailable)
		}
		return nil, errors.New("no IMDS watch window yet: the watcher has not watched within the last 7 days")
	}
	win := windowText(sum, now)
	ev := func(r Result) Result {
		r = r.With("window_seconds", int(observed.Seconds())).With("watching_since", sum.Since(now).Format(time.RFC3339))
		if sum.Dropped > 0 {
			r = r.With("dropped_requests", sum.Dropped)
		}
		return r
	}
	var v1, ctr []Result
	callers := slices.Clone(sum.Callers)
	slices.SortFunc(callers, func(a, b *imdswatch.Caller) int { return strings.Compare(a.Key, b.Key) })
	for _, c := range callers {
		if c.V1 > 0 && c.LastV1.After(now.Add(-imdswatch.Window)) {
			r := NewResult("imds-v1-callers", Failed, "", fmt.Sprintf("%s fetched IMDS without a session token %d time(s) in %s (last %s)%s",
				describeCaller(c), c.V1, win, c.LastV1.UTC().Format(time.RFC3339), credsText(c.V1Creds, "of them for role credentials (iam/security-credentials/)")))
			if c.V1Creds > 0 {
				r.Severity = Critical
			}
			v1 = append(v1, ev(callerEvidence(env, r, c)).WithKey(c.Key))
		}
		if c.Netns == "other" {
			r := NewResult("imds-container-callers", Failed, "", fmt.Sprintf("%s reached IMDS from another network namespace %d time(s) in %s%s",
				describeCaller(c), c.Count(), win, credsText(c.Creds, "for role credentials (iam/security-credentials/)")))
			if c.Creds > 0 {
				r.Severity = High
			}
			ctr = append(ctr, ev(callerEvidence(env, r, c)).WithKey(c.Key))
		}
	}
	lost := ""
	st := Passed
	if sum.Dropped > 0 {
		lost = fmt.Sprintf("; %d request(s) were lost (the kernel's ring buffer was full), so a caller may be missing", sum.Dropped)
		st = Warning
	}
	if len(v1) == 0 {
		v1 = append(v1, ev(NewResult("imds-v1-callers", st, "", fmt.Sprintf("no IMDSv1 call in %s: requiring IMDSv2 will not break this host%s", win, lost))))
	}
	if len(ctr) == 0 {
		ctr = append(ctr, ev(NewResult("imds-container-callers", st, "", fmt.Sprintf("no process in another network namespace reached IMDS in %s%s", win, lost))))
	}
	return append(v1, ctr...), nil
}

// windowText says how long was watched: "6 d 23 h", plus when it is not the whole window or
// the watcher is not running.
func windowText(s *imdswatch.Summary, now time.Time) string {
	t := FormatWindow(s.Observed(now))
	if !s.Running && !s.Updated.IsZero() {
		t += fmt.Sprintf(" (the watcher stopped at %s)", s.Updated.UTC().Format(time.RFC3339))
	}
	return t
}

// FormatWindow writes a watched duration as people read it: "6 d 23 h", "3 h 12 min", "42 s".
func FormatWindow(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%d d %d h", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%d h %d min", int(d/time.Hour), int(d%time.Hour/time.Minute))
	case d >= time.Minute:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	}
	return fmt.Sprintf("%d s", int(d/time.Second))
}

func credsText(n uint64, what string) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d %s", n, what)
}

// describeCaller names a caller in one phrase: "/usr/bin/curl (pid 42, user app, container
// docker 0123456789ab)".
func describeCaller(c *imdswatch.Caller) string {
	name := c.Exe
	if name == "" {
		name = c.Comm
	}
	parts := []string{fmt.Sprintf("pid %d", c.Pid)}
	if c.User != "" {
		parts = append(parts, "user "+c.User)
	} else {
		parts = append(parts, fmt.Sprintf("uid %d", c.UID))
	}
	switch {
	case c.Container != "":
		parts = append(parts, fmt.Sprintf("%s container %.12s", c.Runtime, c.Container))
	case c.Unit != "":
		parts = append(parts, "unit "+c.Unit)
	}
	if c.Netns == "other" && c.Container == "" {
		parts = append(parts, "another network namespace")
	}
	return fmt.Sprintf("%s (%s)", name, strings.Join(parts, ", "))
}

// callerEvidence adds what identifies the caller; its command line goes through the secret
// detector (the watcher's first pass only catches the obvious).
func callerEvidence(env *Env, r Result, c *imdswatch.Caller) Result {
	r = r.With("caller", c.Key).With("pid", int(c.Pid)).With("comm", c.Comm).With("uid", int(c.UID)).
		With("netns", c.Netns).With("first_seen", c.FirstSeen.UTC().Format(time.RFC3339)).
		With("last_seen", c.LastSeen.UTC().Format(time.RFC3339)).With("dest", c.Dest).
		With("requests", map[string]uint64{"token": c.Token, "v2": c.V2, "v1": c.V1, "creds": c.Creds, "v1_creds": c.V1Creds})
	for k, v := range map[string]string{"exe": c.Exe, "user": c.User, "cgroup": c.Cgroup, "container": c.Container,
		"runtime": c.Runtime, "unit": c.Unit, "cmdline": redactCmdline(env, c.Cmdline)} {
		if v != "" {
			r = r.With(k, v)
		}
	}
	if len(c.Parents) > 0 {
		ps := make([]string, len(c.Parents))
		for i, p := range c.Parents {
			name := p.Exe
			if name == "" {
				name = p.Comm
			}
			ps[i] = fmt.Sprintf("%d %s", p.Pid, name)
		}
		r = r.With("parents", ps)
	}
	if c.Gone {
		r = r.With("process_gone", true)
	}
	return r
}

// redactCmdline runs the watcher's cheap pass again (a summary may come from an older
// agent) and then the secret detector: the argument of each finding is replaced, and since a
// finding names one line where a secret may span two arguments (an AWS key id and its
// secret), every other long token-like argument too once anything was found.
func redactCmdline(env *Env, cmdline string) string {
	if cmdline == "" {
		return cmdline
	}
	args := imdswatch.RedactArgs(strings.Split(cmdline, " "))
	if env.Secrets == nil {
		return strings.Join(args, " ")
	}
	fs := env.Secrets.Scan(strings.Join(args, "\n"), "cmdline", env.FingerprintKey)
	for _, f := range fs {
		if f.Line >= 1 && f.Line <= len(args) {
			args[f.Line-1] = imdswatch.Redacted
		}
	}
	if len(fs) > 0 {
		for i, a := range args {
			if i > 0 && len(a) >= 16 && !strings.HasPrefix(a, "/") && !strings.Contains(a, "://") && !strings.HasPrefix(a, "-") {
				args[i] = imdswatch.Redacted
			}
		}
	}
	return strings.Join(args, " ")
}
