package probes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"strings"

	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/sshdconfig"
)

// SSHDProbe looks at the SSH daemon: whether it (or systemd's ssh.socket) listens on a
// non-loopback address, and whether its effective configuration allows password or root
// logins, Match blocks included.
type SSHDProbe struct{}

// Name implements Probe.
func (SSHDProbe) Name() string { return "sshd" }

// IdentityFree tells the scan this probe reads only the host's files and processes, never
// Env.Identity or Env.EC2: it starts without waiting for IMDS.
func (SSHDProbe) IdentityFree() bool { return true }

// sshdLayout is where a platform keeps sshd and its configuration.
type sshdLayout struct {
	dir, config string
	binaries    []string
}

// sshdLayoutFor returns the layout of OpenSSH on Linux (distribution packages) or Windows
// (the OpenSSH.Server capability).
func sshdLayoutFor(goos string) sshdLayout {
	if goos == "windows" {
		return sshdLayout{dir: "/ProgramData/ssh", config: "/ProgramData/ssh/sshd_config",
			binaries: []string{"/Windows/System32/OpenSSH/sshd.exe", "/Program Files/OpenSSH/sshd.exe"}}
	}
	return sshdLayout{dir: sshdconfig.SSHDir, config: "/etc/ssh/sshd_config",
		binaries: []string{"/usr/sbin/sshd", "/usr/bin/sshd", "/usr/local/sbin/sshd"}}
}

// Checks implements Probe.
func (SSHDProbe) Checks() []Check {
	return []Check{
		{
			ID: "ssh-listening-public", Probe: "sshd", Severity: Medium,
			Title:      "sshd (or a socket-activated ssh unit) listens on a non-loopback address",
			FailedWhen: "sshd (or a socket-activated ssh unit) listens on a non-loopback address",
			RaisedWhen: "HIGH with a public IPv4; CRITICAL when a security group opens that port to the world",
			Practices:  []int{5, 2}, CIS: []string{"5.2", "5.3"}, SecurityHub: []string{"EC2.13", "EC2.19"},
			Remediation: Remediation{
				Text: "Use Session Manager instead of SSH: stop and disable sshd (systemctl disable --now ssh.service ssh.socket sshd.service), or bind it to loopback (ListenAddress 127.0.0.1) and reach it through Session Manager port forwarding; keep port 22 closed in security groups.",
				URL:  "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager.html",
			},
		},
		{
			ID: "ssh-password-auth", Probe: "sshd", Severity: High,
			Title:      "sshd accepts password authentication",
			FailedWhen: "PasswordAuthentication is effectively yes",
			Practices:  []int{5},
			Remediation: Remediation{
				Text: "Set PasswordAuthentication no in /etc/ssh/sshd_config (before any Include that could set it first) and in every Match block that sets it, check with sshd -T, then reload sshd.",
				URL:  "https://man.openbsd.org/sshd_config#PasswordAuthentication",
			},
		},
		{
			ID: "ssh-root-login", Probe: "sshd", Severity: Medium,
			Title:      "sshd permits root to log in",
			FailedWhen: "PermitRootLogin is effectively yes",
			Practices:  []int{5},
			Remediation: Remediation{
				Text: "Set PermitRootLogin no (or prohibit-password) in /etc/ssh/sshd_config and in every Match block that sets it, check with sshd -T, then reload sshd.",
				URL:  "https://man.openbsd.org/sshd_config#PermitRootLogin",
			},
		},
	}
}

// Run implements Probe.
func (SSHDProbe) Run(ctx context.Context, env *Env) ([]Result, error) {
	lay := sshdLayoutFor(runtime.GOOS)
	cfg, cfgErr := loadSSHDConfig(env, lay)
	common := sshdCommonEvidence(cfg)
	var out []Result
	out = append(out, sshdListeners(ctx, env, cfg, common)...)
	out = append(out, sshdSetting(lay, cfg, cfgErr, common, "ssh-password-auth", "passwordauthentication", "yes", []string{"yes"})...)
	out = append(out, sshdSetting(lay, cfg, cfgErr, common, "ssh-root-login", "permitrootlogin", "prohibit-password", []string{"yes"})...)
	return out, nil
}

// hostConfigFS lets the sshd_config parser read through the root-bound host tree.
type hostConfigFS struct{ fs *hostfs.FS }

func (h hostConfigFS) ReadFile(name string) ([]byte, error) {
	b, truncated, err := h.fs.ReadFile(name, sshdconfig.MaxFileSize)
	if err != nil {
		return nil, err
	}
	if truncated {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, sshdconfig.MaxFileSize)
	}
	return b, nil
}

func (h hostConfigFS) Glob(pattern string) ([]string, error) {
	return h.fs.Glob(pattern, sshdconfig.MaxFiles)
}

// loadSSHDConfig parses sshd_config; (nil, nil) means there is none and no sshd either.
func loadSSHDConfig(env *Env, lay sshdLayout) (*sshdconfig.Config, error) {
	cfg, err := sshdconfig.ParseIn(hostConfigFS{env.FS}, lay.config, lay.dir)
	if err == nil {
		return cfg, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, b := range lay.binaries {
		if _, serr := env.FS.Stat(b); serr == nil {
			// sshd without a config file runs on its compiled-in defaults.
			return &sshdconfig.Config{}, nil
		}
	}
	return nil, nil
}

// sshdCommonEvidence is what every sshd result carries: the files read and EC2 Instance
// Connect (an AuthorizedKeysCommand fetching keys pushed through the EC2 API).
func sshdCommonEvidence(cfg *sshdconfig.Config) map[string]any {
	ev := map[string]any{}
	if cfg == nil {
		return ev
	}
	ev["config_files"] = cfg.Files
	if len(cfg.Problems) > 0 {
		ev["config_problems"] = cfg.Problems
	}
	if d, ok := cfg.Lookup("authorizedkeyscommand", nil); ok && !strings.EqualFold(d.Value(), "none") {
		// The program only: its arguments may carry a token for a key service.
		ev["authorized_keys_command"] = strings.Fields(d.Value() + " x")[0]
		ev["ec2_instance_connect"] = strings.Contains(strings.Join(d.Args, " "), "eic_run_authorized_keys")
	} else {
		ev["ec2_instance_connect"] = false
	}
	return ev
}

func withAll(r Result, ev map[string]any) Result {
	for k, v := range ev {
		r = r.With(k, v)
	}
	return r
}

// sshdSetting rates one yes/no-style setting: its global effective value (sshd -T) and every
// Match block that sets it to a bad value for some connections.
//
// The steps: no readable config (NOT_AVAILABLE) or no sshd (PASSED); the global value
// (readGlobal) and the Match blocks' (readMatches); the evidence, with PAM's say for
// PasswordAuthentication (withPAMPasswords); the status and reason (rate).
func sshdSetting(lay sshdLayout, cfg *sshdconfig.Config, cfgErr error, common map[string]any, check, keyword, def string, bad []string) []Result {
	if cfgErr != nil {
		return []Result{NewResult(check, NotAvailable, lay.config, "cannot read the sshd configuration: "+cfgErr.Error())}
	}
	if cfg == nil {
		return []Result{NewResult(check, Passed, lay.config, "sshd is not installed (no sshd_config and no sshd binary)")}
	}
	var s sshdSettingView
	s.readGlobal(cfg, keyword, def)
	s.readMatches(cfg, keyword, bad)
	r := s.evidence(withAll(NewResult(check, Passed, lay.config, ""), common))
	pamPasswords := false
	if keyword == "passwordauthentication" {
		r, pamPasswords = withPAMPasswords(r, cfg)
	}
	return []Result{s.rate(r, sshdKeywordName(keyword), bad, pamPasswords)}
}

// sshdSettingView is what sshd_config says about one setting. A value sshd does not accept
// reads "invalid": it is never echoed (it may be anything).
type sshdSettingView struct {
	value, source string           // the global effective value and where it is set
	invalid       []string         // where a value sshd does not accept is set, global first
	overrides     []map[string]any // every Match block that sets it (evidence)
	badMatches    []string         // the Match blocks that set it to a bad value (the reason)
}

// readGlobal reads keyword's global effective value, def (OpenSSH's default) when nothing
// sets it.
func (s *sshdSettingView) readGlobal(cfg *sshdconfig.Config, keyword, def string) {
	s.value, s.source = def, "OpenSSH default"
	if d, ok := cfg.Lookup(keyword, nil); ok {
		s.value, s.source = sshdNorm(d.Value()), d.Where()
	}
	// A value sshd does not accept is neither safe nor unsafe: sshd refuses the whole config.
	// It is not echoed (it may be anything).
	if !slices.Contains(sshdValid[keyword], s.value) {
		s.value, s.invalid = "invalid", append(s.invalid, s.source)
	}
}

// readMatches reads every Match block that sets keyword, and notes those that set it to one
// of the bad values.
func (s *sshdSettingView) readMatches(cfg *sshdconfig.Config, keyword string, bad []string) {
	for _, d := range cfg.Overrides(keyword) {
		m := d.Context[len(d.Context)-1]
		v := sshdNorm(d.Value())
		if !slices.Contains(sshdValid[keyword], v) {
			v, s.invalid = "invalid", append(s.invalid, d.Where())
		}
		// A Match line's arguments are never quoted (a pasted secret, an escape sequence, a
		// name the SOC need not see): where it is and which criteria it uses.
		matchAt := fmt.Sprintf("%s:%d", m.File, m.Line)
		s.overrides = append(s.overrides, map[string]any{"match_at": matchAt, "criteria": matchCriteria(m), "at": d.Where(), "value": v})
		if slices.Contains(bad, v) {
			s.badMatches = append(s.badMatches, fmt.Sprintf("the Match block at %s (%s; set at %s)", matchAt, matchCriteria(m), d.Where()))
		}
	}
}

// evidence adds the effective value, its source and the Match blocks that set it to r.
func (s *sshdSettingView) evidence(r Result) Result {
	r = r.With("effective", s.value).With("source", s.source)
	if len(s.overrides) > 0 {
		r = r.With("match_overrides", s.overrides)
	}
	return r
}

// withPAMPasswords adds KbdInteractiveAuthentication and UsePAM to r, and says whether the
// two let PAM ask for the password even when PasswordAuthentication is no.
func withPAMPasswords(r Result, cfg *sshdconfig.Config) (Result, bool) {
	// With PAM, keyboard-interactive asks for the password even when this is no.
	kbd, pam := "yes", "no" // OpenSSH's defaults
	if d, ok := cfg.Lookup("kbdinteractiveauthentication", nil); ok {
		kbd = strings.ToLower(d.Value())
	}
	if d, ok := cfg.Lookup("usepam", nil); ok {
		pam = strings.ToLower(d.Value())
	}
	r = r.With("kbd_interactive_authentication", kbd).With("use_pam", pam)
	return r, kbd == "yes" && pam == "yes"
}

// rate gives r (for the setting sshd_config spells name) its status and reason: NOT_AVAILABLE
// when a value is one sshd refuses, FAILED when the global value or a Match block is bad,
// WARNING when PAM prompts for passwords anyway (pamPasswords), PASSED otherwise.
func (s *sshdSettingView) rate(r Result, name string, bad []string, pamPasswords bool) Result {
	switch {
	case len(s.invalid) > 0:
		r.Status = NotAvailable
		r.Reason = fmt.Sprintf("%s has a value sshd does not accept (%s): sshd refuses to start with this configuration, so the running sshd's setting cannot be read from it (check sshd -T)", name, strings.Join(s.invalid, ", "))
	case slices.Contains(bad, s.value):
		r.Status = Failed
		r.Reason = fmt.Sprintf("%s is effectively %s (%s)", name, s.value, s.source)
		if len(s.badMatches) > 0 {
			r.Reason += ", and Match blocks set it too: " + strings.Join(s.badMatches, ", ")
		}
	case len(s.badMatches) > 0:
		r.Status = Failed
		r.Reason = fmt.Sprintf("%s is %s globally (%s) but a Match block re-enables it for some connections: %s", name, s.value, s.source, strings.Join(s.badMatches, ", "))
	case pamPasswords:
		r.Status, r.Severity = Warning, Medium
		r.Reason = fmt.Sprintf("%s is %s (%s), but KbdInteractiveAuthentication yes with UsePAM yes lets PAM prompt for the password anyway", name, s.value, s.source)
	default:
		r.Reason = fmt.Sprintf("%s is effectively %s (%s), and no Match block sets it to %s", name, s.value, s.source, strings.Join(bad, " or "))
	}
	return r
}

// sshdNorm is a setting's value as sshd compares it: lower case, and the old name of
// prohibit-password, which sshd still accepts, under its new one.
func sshdNorm(v string) string {
	v = strings.ToLower(v)
	if v == "without-password" { // the old name sshd still accepts
		return "prohibit-password"
	}
	return v
}

// matchCriteria names the criteria of a Match line ("user, address"; "all"), never their
// patterns (the parser keeps only criteria sshd knows, lower case).
func matchCriteria(m *sshdconfig.Match) string {
	if m.All {
		return "all"
	}
	var names []string
	for _, c := range m.Criteria {
		if !slices.Contains(names, c.Name) {
			names = append(names, c.Name)
		}
	}
	if len(names) == 0 {
		return "no criteria"
	}
	return strings.Join(names, ", ")
}

// sshdValid are the values sshd accepts for the settings sshdSetting rates (after norm).
var sshdValid = map[string][]string{
	"passwordauthentication": {"yes", "no"},
	"permitrootlogin":        {"yes", "prohibit-password", "forced-commands-only", "no"},
}

func sshdKeywordName(kw string) string {
	switch kw {
	case "passwordauthentication":
		return "PasswordAuthentication"
	case "permitrootlogin":
		return "PermitRootLogin"
	}
	return kw
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
