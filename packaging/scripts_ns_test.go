//go:build linux

package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

// fakeSystemctl logs its arguments and succeeds, unless they are $SYSTEMCTL_FAIL; the scripts
// must call it exactly as expected.
const fakeSystemctl = "#!/bin/sh\necho \"$*\" >> \"$SYSTEMCTL_LOG\"\n[ \"$*\" != \"${SYSTEMCTL_FAIL:-}\" ]\n"

// inNamespace runs sh code in a private mount namespace where /etc, /usr/local/bin and
// /run/systemd are empty tmpfs (so the host's files are never touched), /run/systemd/system
// exists when running is set (systemd "runs"), and PATH starts with a fake systemctl unless
// withSystemctl is false (then PATH holds only the few tools the scripts use). It returns the
// output and the fake systemctl's log.
func inNamespace(t *testing.T, code string, running, withSystemctl bool) (string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a mount namespace")
	}
	unshare := testenv.Tool(t, "unshare")
	dash := testenv.Tool(t, "dash")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	path := bin + ":" + os.Getenv("PATH")
	if withSystemctl {
		os.WriteFile(filepath.Join(bin, "systemctl"), []byte(fakeSystemctl), 0o755)
	} else {
		for _, tool := range []string{"sh", "dash", "dirname", "cp", "chmod", "mv", "mkdir", "rm", "sed", "grep", "cat", "ls"} {
			p, err := exec.LookPath(tool)
			if err != nil {
				t.Fatalf("%s: %v", tool, err)
			}
			os.Symlink(p, filepath.Join(bin, tool))
		}
		path = bin
	}
	mount := testenv.Tool(t, "mount")
	mkdir := testenv.Tool(t, "mkdir")
	setup := "set -e; M=" + mount + "; D=" + mkdir + "; $M -t tmpfs tmpfs /etc; $M -t tmpfs tmpfs /usr/local/bin; $D -p /run/systemd; $M -t tmpfs tmpfs /run/systemd; "
	if running {
		setup += "$D /run/systemd/system; "
	}
	log := filepath.Join(dir, "systemctl.log")
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", dash, "-c", setup+"set +e; "+code)
	cmd.Env = testenv.Environ("PATH="+path, "SYSTEMCTL_LOG="+log, "DASH="+dash)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("namespace: %v\n%s", err, out.String())
	}
	l, _ := os.ReadFile(log)
	return out.String(), string(l)
}

// The systemctl calls that install and remove both units: the agent and the IMDS watcher,
// the watcher (re)started first (it is ordered before the agent).
const (
	both  = "ec2sec.service ec2sec-imdswatch.service"
	start = "daemon-reload\nenable " + both + "\nrestart ec2sec-imdswatch.service\nrestart ec2sec.service\n"
	stop  = "stop " + both + "\ndisable " + both + "\n"
)

// TestMaintainerScripts runs the deb/rpm scripts with the arguments dpkg and rpm give them.
func TestMaintainerScripts(t *testing.T) {
	nfpm, _ := filepath.Abs("nfpm")
	cases := []struct {
		script, arg    string
		running, sctl  bool
		calls, message string
	}{
		{"postinstall.sh", "configure", true, true, start, ""},
		{"postinstall.sh", "1", true, true, start, ""},
		{"postinstall.sh", "2", true, true, start, ""}, // rpm upgrade: the new binary takes over
		{"postinstall.sh", "configure", false, true, "enable " + both + "\n", "systemd is not running"},
		{"postinstall.sh", "configure", false, false, "", "systemctl not found"},
		{"preremove.sh", "remove", true, true, stop, ""},
		{"preremove.sh", "0", true, true, stop, ""},
		{"preremove.sh", "0", false, true, "disable " + both + "\n", ""},
		{"preremove.sh", "upgrade", true, true, "", ""}, // deb upgrade: postinst restarts
		{"preremove.sh", "1", true, true, "", ""},       // rpm upgrade: runs after the new %post
		{"postremove.sh", "remove", true, true, "daemon-reload\n", ""},
	}
	for _, c := range cases {
		out, calls := inNamespace(t, `"$DASH" `+filepath.Join(nfpm, c.script)+" "+c.arg+`; echo "exit $?"`, c.running, c.sctl)
		if !strings.Contains(out, "exit 0\n") || calls != c.calls || !strings.Contains(out, c.message) {
			t.Errorf("%s %s (systemd running %v, systemctl %v): calls %q, want %q\n%s", c.script, c.arg, c.running, c.sctl, calls, c.calls, out)
		}
	}
}

// TestInstallScriptWithSystemd runs install.sh and uninstall.sh on "this host" (inside the
// namespace) where systemd runs, where it does not, and where there is no systemctl.
func TestInstallScriptWithSystemd(t *testing.T) {
	pkg := fakePackage(t)
	code := `
"$DASH" ` + pkg + `/install.sh; echo "install $?"
ls /usr/local/bin/ec2sec /etc/systemd/system/ec2sec.service /etc/systemd/system/ec2sec-imdswatch.service /etc/ec2sec/config.yaml
"$DASH" ` + pkg + `/install.sh; echo "install again $?"
"$DASH" ` + pkg + `/uninstall.sh; echo "uninstall $?"
echo "left:"; ls /usr/local/bin /etc/systemd/system; ls /etc/ec2sec
"$DASH" ` + pkg + `/uninstall.sh; echo "uninstall again $?"
`
	out, calls := inNamespace(t, code, true, true)
	for _, w := range []string{"install 0\n", "/usr/local/bin/ec2sec\n", "/etc/systemd/system/ec2sec.service\n", "/etc/systemd/system/ec2sec-imdswatch.service\n", "install again 0\n", "uninstall 0\n", "config.yaml\n", "uninstall again 0\n", "nothing to do"} {
		if !strings.Contains(out, w) {
			t.Errorf("systemd running: output lacks %q\n%s", w, out)
		}
	}
	if want := start + start + stop + "daemon-reload\n"; calls != want {
		t.Errorf("systemd running: systemctl calls\n%s\nwant\n%s", calls, want)
	}
	if _, left, _ := strings.Cut(out, "left:"); strings.Contains(left, "ec2sec.service") || strings.Contains(left, "ec2sec-imdswatch.service") || strings.Contains(left, "bin/ec2sec") {
		t.Errorf("uninstall left a unit or the binary:\n%s", left)
	}

	out, calls = inNamespace(t, code, false, true)
	if calls != "" || !strings.Contains(out, "systemd is not running here") || !strings.Contains(out, "install 0\n") || !strings.Contains(out, "uninstall 0\n") {
		t.Errorf("systemd not running: calls %q\n%s", calls, out)
	}
	out, calls = inNamespace(t, code, true, false)
	if calls != "" || !strings.Contains(out, "systemctl not found") || !strings.Contains(out, "install 0\n") || !strings.Contains(out, "uninstall 0\n") {
		t.Errorf("no systemctl: calls %q\n%s", calls, out)
	}
}

// TestWatcherFailureKeepsInstall: a host where the IMDS watcher's unit does not start (a
// kernel without the hooks) still gets the agent, from the package and from install.sh; a
// failing agent still fails install.sh, as before.
func TestWatcherFailureKeepsInstall(t *testing.T) {
	nfpm, _ := filepath.Abs("nfpm")
	pkg := fakePackage(t)
	code := `SYSTEMCTL_FAIL="restart ec2sec-imdswatch.service" "$DASH" ` + filepath.Join(nfpm, "postinstall.sh") + ` configure; echo "postinstall $?"
SYSTEMCTL_FAIL="restart ec2sec-imdswatch.service" "$DASH" ` + pkg + `/install.sh; echo "install $?"
SYSTEMCTL_FAIL="restart ec2sec.service" "$DASH" ` + pkg + `/install.sh; echo "install, agent failing $?"
`
	out, calls := inNamespace(t, code, true, true)
	for _, w := range []string{"postinstall 0\n", "install 0\n", "install, agent failing 1\n", "the IMDS watcher did not start", "journalctl -u ec2sec-imdswatch"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q\n%s", w, out)
		}
	}
	if want := start + start + start; calls != want {
		t.Errorf("systemctl calls\n%s\nwant\n%s", calls, want)
	}
}
