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
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ec2sec.service")
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

func TestUnitVerifies(t *testing.T) {
	if msg := verify(t, writeUnit(t, Unit)); msg != "" {
		t.Errorf("systemd-analyze verify complained:\n%s", msg)
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

func TestUnitExposure(t *testing.T) {
	v, out := exposure(t, writeUnit(t, Unit))
	if v > maxExposure {
		t.Errorf("exposure %.1f > %.1f:\n%s", v, maxExposure, out)
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
