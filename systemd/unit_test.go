package systemd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// maxExposure is the bar for `systemd-analyze security` (0 best, 10 worst).
const maxExposure = 2.0

// writeUnit writes text as ec2sec.service in a fresh directory, with the binary path pointed
// at an executable that exists here (verify checks ExecStart= is executable).
func writeUnit(t *testing.T, text string) string {
	t.Helper()
	return writeNamedUnit(t, "ec2sec.service", text)
}

func writeNamedUnit(t *testing.T, name, text string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(text, BinPath, exe)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// verify runs `systemd-analyze verify` and returns its stderr. It exits 0 on unknown keys and
// bad values, so stderr is what tells.
func verify(t *testing.T, path string) string {
	t.Helper()
	sa := testenv.Tool(t, "systemd-analyze")
	var stderr bytes.Buffer
	cmd := exec.Command(sa, "verify", path)
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", path, err, stderr.String())
	}
	return strings.TrimSpace(stderr.String())
}

var exposureRe = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+(?:\.[0-9]+)?)`)

func exposure(t *testing.T, path string) (float64, string) {
	t.Helper()
	sa := testenv.Tool(t, "systemd-analyze")
	// --offline=true reads the unit file instead of asking a running systemd; the command exits
	// non-zero when a unit is above its threshold (default 100), so the output is what counts.
	out, _ := exec.Command(sa, "security", "--offline=true", path).CombinedOutput()
	m := exposureRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: no overall exposure in output:\n%s", out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v, string(out)
}

// shipped maps each unit file in this directory to its embedded text: a unit added here
// without being shipped (embedded, so the packages and their tests know it) fails.
func shipped(t *testing.T) map[string]string {
	t.Helper()
	embedded := map[string]string{"ec2sec.service": Unit, IMDSWatchName: IMDSWatchUnit}
	files, err := filepath.Glob("*.service")
	if err != nil || len(files) == 0 {
		t.Fatalf("no unit files here: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if embedded[f] != string(b) {
			t.Errorf("%s is not embedded in package systemd (or differs from its embedded text)", f)
		}
		out[f] = string(b)
	}
	if len(out) != len(embedded) {
		t.Errorf("unit files %v, embedded %d", files, len(embedded))
	}
	return out
}

func TestUnitVerifies(t *testing.T) {
	for name, text := range shipped(t) {
		if msg := verify(t, writeNamedUnit(t, name, text)); msg != "" {
			t.Errorf("%s: systemd-analyze verify complained:\n%s", name, msg)
		}
	}
}

// TestVerifyCatchesMistakes proves the check above can fail: an unknown key and a bad value
// must both show up on stderr.
func TestVerifyCatchesMistakes(t *testing.T) {
	bad := strings.Replace(Unit, "Nice=10\n", "Nice=ten\nProtectEverything=yes\n", 1)
	msg := verify(t, writeUnit(t, bad))
	for _, want := range []string{"Unknown key", "ProtectEverything", "nice"} {
		if !strings.Contains(msg, want) {
			t.Errorf("verify of a broken unit: stderr lacks %q:\n%s", want, msg)
		}
	}
}

// mainExposure is what ec2sec.service measures: the watcher's unit exists so that the agent's
// keeps it (docs/imds-watch.md, "Privileges"). It was 1.9 until the unit let the agent call
// capset (in @privileged) to give up its capabilities (TestUnitAllowsWhatTheAgentCalls).
const mainExposure = 2.0

func TestUnitExposure(t *testing.T) {
	for name, text := range shipped(t) {
		v, out := exposure(t, writeNamedUnit(t, name, text))
		if v > maxExposure {
			t.Errorf("%s: exposure %.1f > %.1f:\n%s", name, v, maxExposure, out)
		}
		if name == "ec2sec.service" && v > mainExposure {
			t.Errorf("%s: exposure %.1f, was %.1f: did the agent's unit gain a privilege?\n%s", name, v, mainExposure, out)
		}
		t.Logf("%s: exposure %.1f", name, v)
	}
	// The same measurement on a plain unit must be far worse, or the parse is wrong.
	plain := "[Unit]\nDescription=plain\n[Service]\nExecStart=" + BinPath + " run\n"
	if pv, _ := exposure(t, writeUnit(t, plain)); pv <= maxExposure {
		t.Errorf("a plain unit scored %.1f: the exposure check cannot fail", pv)
	}
}

// TestUnitKeepsAgentWorking pins the settings the agent cannot do without, so a later
// "hardening" cannot silently blind it (e.g. ProtectProc=invisible hides other users'
// processes, ProtectHome=yes hides the home directories it scans).
func TestUnitKeepsAgentWorking(t *testing.T) {
	want := []string{
		"CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE",
		"AmbientCapabilities=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE",
		"ProtectHome=read-only",
		"ProtectSystem=strict",
		"ProtectProc=ptraceable",
		"StateDirectory=ec2sec",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
		"Restart=on-failure",
		"MemoryMax=128M",
		"CPUQuota=20%",
		"Nice=10",
		"NoNewPrivileges=yes",
		"ExecStart=" + BinPath + " run",
		// A compromised agent holding CAP_SYS_PTRACE must not write another process's memory.
		"SystemCallFilter=~ptrace process_vm_readv process_vm_writev pidfd_getfd",
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(Unit, "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("unit lacks %q", w)
		}
	}
	for _, bad := range []string{"ProcSubset=", "PrivateNetwork=yes", "PrivateUsers=yes", "ProtectHome=yes", "ProtectHome=tmpfs", "ProtectProc=invisible", "ProtectProc=noaccess"} {
		if strings.Contains(Unit, "\n"+bad) {
			t.Errorf("unit has %q, which blinds the agent", bad)
		}
	}
}

// render mimics kardianos/service v1.3.0's engine for the actions Template uses: {{Path |
// cmdEscape}} replaces spaces with \x20, {{range Arguments}} {{. | cmd}}{{end}} quotes each.
func render(tmpl, path string, args []string) string {
	var a strings.Builder
	for _, s := range args {
		a.WriteString(` "` + strings.ReplaceAll(s, `"`, `\"`) + `"`)
	}
	return strings.NewReplacer(
		"{{Path | cmdEscape}}", strings.ReplaceAll(path, " ", `\x20`),
		"{{range Arguments}} {{. | cmd}}{{end}}", a.String(),
	).Replace(tmpl)
}

func TestTemplate(t *testing.T) {
	tmpl, err := Template()
	if err != nil {
		t.Fatal(err)
	}
	// Only actions v1.3.0's engine knows: keys Path and Arguments, functions cmd and cmdEscape.
	known := map[string]bool{"Path | cmdEscape": true, "range Arguments": true, ". | cmd": true, "end": true}
	acts := regexp.MustCompile(`\{\{(.*?)\}\}`).FindAllStringSubmatch(tmpl, -1)
	if len(acts) != 5 {
		t.Errorf("template has %d actions, want 5 (ExecStart: path, range, arg, end; Condition: path)", len(acts))
	}
	for _, m := range acts {
		if !known[strings.TrimSpace(m[1])] {
			t.Errorf("template action {{%s}} is not one kardianos/service v1.3.0 renders", m[1])
		}
	}
	// Rendered for the package path, it is the shipped unit but for quoting the argument.
	got := render(tmpl, BinPath, []string{"run"})
	if want := strings.Replace(Unit, "ExecStart="+BinPath+" run", "ExecStart="+BinPath+` "run"`, 1); got != want {
		t.Errorf("rendered template differs from the unit:\n%s", got)
	}
	// Rendered for a binary elsewhere, with a space in its path, it still verifies cleanly.
	dir := filepath.Join(t.TempDir(), "opt dir")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "ec2sec")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ec2sec.service")
	if err := os.WriteFile(p, []byte(render(tmpl, exe, []string{"run"})), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg := verify(t, p); msg != "" {
		t.Errorf("rendered unit: systemd-analyze verify complained:\n%s", msg)
	}
	if v, out := exposure(t, p); v > maxExposure {
		t.Errorf("rendered unit: exposure %.1f > %.1f\n%s", v, maxExposure, out)
	}
}

// unitLines returns a unit's settings, trimmed, in order.
func unitLines(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestIMDSWatchUnit pins what the watcher's unit holds: the capabilities the watcher needs
// and no other (no CAP_SYS_ADMIN, none of the agent's file-reading CAP_DAC_READ_SEARCH), no
// network, bpf(2) allowed after @privileged is denied, and the agent's user and state dir, so
// the two units share the summary.
func TestIMDSWatchUnit(t *testing.T) {
	lines := unitLines(IMDSWatchUnit)
	index := map[string]int{}
	for i, l := range lines {
		if _, dup := index[l]; !dup {
			index[l] = i
		}
	}
	want := []string{
		"Type=notify",
		"ExecStart=" + BinPath + " imds-watch --resident",
		"CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_PTRACE",
		"AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_PTRACE",
		"RestrictAddressFamilies=AF_UNIX",
		"IPAddressDeny=any",
		"NoNewPrivileges=yes",
		"ProtectSystem=strict",
		"ProtectHome=yes",
		"ProtectProc=ptraceable",
		"ProtectControlGroups=yes",
		"SystemCallFilter=~ptrace process_vm_readv process_vm_writev pidfd_getfd",
		"SystemCallFilter=bpf capset",
		"Before=ec2sec.service",
		"WantedBy=multi-user.target",
	}
	for _, w := range want {
		if _, ok := index[w]; !ok {
			t.Errorf("%s lacks %q", IMDSWatchName, w)
		}
	}
	// The allow list is built in order: bpf and capset must come after the line that denies
	// @privileged.
	deny := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "SystemCallFilter=~@privileged") {
			deny = i
		}
	}
	if deny < 0 || index["SystemCallFilter=bpf capset"] < deny {
		t.Errorf("SystemCallFilter=bpf capset (line %d) must follow the ~@privileged line (%d)", index["SystemCallFilter=bpf capset"], deny)
	}
	for _, bad := range []string{"CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH", "AF_INET", "AF_NETLINK", "PrivateNetwork=yes", "PrivateUsers=yes", "@mount\n", "Requires=", "BindsTo="} {
		for _, l := range lines {
			if strings.Contains(l+"\n", bad) && !strings.HasPrefix(l, "SystemCallFilter=~") {
				t.Errorf("%s: %q has %q", IMDSWatchName, l, bad)
			}
		}
	}
	// Shared with the agent's unit: the same transient user and state dir, so both own the
	// summary's directory (systemd gives running units with one dynamic user name one UID).
	main := map[string]bool{}
	for _, l := range unitLines(Unit) {
		main[l] = true
	}
	for _, shared := range []string{"DynamicUser=yes", "User=ec2sec", "StateDirectory=ec2sec", "StateDirectoryMode=0700", "UMask=0077"} {
		if _, ok := index[shared]; !ok || !main[shared] {
			t.Errorf("%q must be in both units (watcher %v, agent %v)", shared, ok, main[shared])
		}
	}
}

func TestParseVersion(t *testing.T) {
	for out, want := range map[string]int{
		"systemd 219\n+PAM +AUDIT +SELINUX": 219,
		"systemd 252 (252.38-1~deb12u1)\n":  252,
		"systemd 2190x":                     0,
		"":                                  0,
		"fake systemctl\nsystemd 219":       0,
	} {
		if got := ParseVersion(out); got != want {
			t.Errorf("ParseVersion(%q) = %d, want %d", out, got, want)
		}
	}
}

// agentSyscalls are the system calls the agent makes to confine itself and to give up its
// privileges (agent/confine_linux.go): a unit filter that denies one makes that step fail
// with only a log line, so the hardening the docs describe would silently not happen.
var agentSyscalls = map[string][]string{
	"ec2sec.service": {"capset", "prctl", "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"},
	IMDSWatchName:    {"bpf", "capset"},
}

// TestUnitAllowsWhatTheAgentCalls expands each unit's SystemCallFilter= lines as systemd
// does (in order: the first line without ~ makes an allow list, ~ lines take from it, later
// plain lines add to it; groups as systemd-analyze syscall-filter lists them) and checks
// that the calls the agent depends on stay allowed. @privileged holds capset: denied, the
// daemon could not clear CAP_SYS_PTRACE and no worker could drop its capabilities.
func TestUnitAllowsWhatTheAgentCalls(t *testing.T) {
	sa := testenv.Tool(t, "systemd-analyze")
	groups := map[string][]string{}
	var expand func(name string) []string
	expand = func(name string) []string {
		if !strings.HasPrefix(name, "@") {
			return []string{name}
		}
		if g, ok := groups[name]; ok {
			return g
		}
		out, err := exec.Command(sa, "syscall-filter", name).Output()
		if err != nil {
			t.Fatalf("systemd-analyze syscall-filter %s: %v", name, err)
		}
		var g []string
		for _, l := range strings.Split(string(out), "\n")[1:] {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			g = append(g, expand(l)...)
		}
		groups[name] = g
		return g
	}
	for name, text := range shipped(t) {
		// allowed holds what the lines named: true allowed, false refused. The first line sets
		// the mode: an allow list refuses what it never named, a deny list allows it.
		allowed := map[string]bool{}
		mode := "" // "allow" or "deny", from the first line
		for _, l := range strings.Split(text, "\n") {
			v, ok := strings.CutPrefix(strings.TrimSpace(l), "SystemCallFilter=")
			if !ok {
				continue
			}
			deny := strings.HasPrefix(v, "~")
			if mode == "" {
				mode = map[bool]string{true: "deny", false: "allow"}[deny]
			}
			for _, f := range strings.Fields(strings.TrimPrefix(v, "~")) {
				for _, s := range expand(f) {
					allowed[s] = !deny
				}
			}
		}
		for _, s := range agentSyscalls[name] {
			if ok, named := allowed[s]; !ok && (named || mode == "allow") {
				t.Errorf("%s: the unit's SystemCallFilter= refuses %s, which the agent needs", name, s)
			}
		}
	}
}
