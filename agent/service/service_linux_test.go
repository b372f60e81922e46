package service

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ksvc "github.com/kardianos/service"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/systemd"
)

// fakeSystemctl answers what kardianos/service asks systemctl, and logs each call.
const fakeSystemctl = `#!/bin/sh
echo "$*" >> "$EC2SEC_SERVICE_NS/systemctl.log"
state="$EC2SEC_SERVICE_NS/active"
case "$1" in
--version) echo "systemd ${SYSTEMD_VERSION:-252} (${SYSTEMD_VERSION:-252}-1)" ;;
is-active) if [ -f "$state" ]; then echo active; else echo inactive; exit 3; fi ;;
list-unit-files)
  if [ -f "/etc/systemd/system/$4" ] || [ -f "/usr/lib/systemd/system/$4" ]; then
    echo "$4 enabled enabled"; echo "1 unit files listed."
  else echo "0 unit files listed."; exit 1; fi ;;
start) touch "$state" ;;
stop) rm -f "$state" ;;
enable|disable|daemon-reload) ;;
*) echo "fake systemctl: unexpected $*" >&2; exit 1 ;;
esac
`

// TestSystemdInNamespace drives the real kardianos/service systemd backend, with our unit as
// its template, in a private mount namespace: /etc/systemd/system, /usr/lib/systemd/system,
// /var/lib and /run/systemd are empty tmpfs there (so the host's units are never touched, and
// /run/systemd/system makes kardianos detect systemd), and systemctl is a fake on PATH.
func TestSystemdInNamespace(t *testing.T) {
	if os.Getenv("EC2SEC_SERVICE_NS") != "" {
		t.Skip("inside the namespace")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a mount namespace")
	}
	unshare := testenv.Tool(t, "unshare")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(fakeSystemctl), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/etc/systemd/system"); err != nil {
		testenv.Missing(t, "no /etc/systemd/system: systemd is not installed")
	}
	// Directories are only mounted over, never created: creating one would reach the host.
	script := `set -e
mount -t tmpfs tmpfs /etc/systemd/system
if [ -d /usr/lib/systemd/system ]; then mount -t tmpfs tmpfs /usr/lib/systemd/system; else export EC2SEC_NO_PKGDIR=1; fi
mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system
mount -t tmpfs tmpfs /var/lib
exec "$0" -test.run '^TestSystemdHelper$' -test.v -test.count=1`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script, os.Args[0])
	cmd.Env = testenv.Environ("EC2SEC_SERVICE_NS="+dir, "PATH="+bin+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestSystemdHelper") {
		t.Fatalf("helper in namespace: %v\n%s", err, out)
	}
}

// TestSystemdHelper runs inside the namespace TestSystemdInNamespace makes.
func TestSystemdHelper(t *testing.T) {
	dir := os.Getenv("EC2SEC_SERVICE_NS")
	if dir == "" {
		t.Skip("run by TestSystemdInNamespace")
	}
	const exe = "/opt/ec2sec test/ec2sec" // a space, to see cmdEscape at work
	cfg, err := Config(exe)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ksvc.New(noop{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := supported(s.Platform()); err != nil {
		t.Fatalf("kardianos chose %q: %v", s.Platform(), err)
	}
	h := platformHost()
	run := func(action string, want int) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := control(s, h, action, exe, &out, &errb); code != want {
			t.Fatalf("%s: exit %d, want %d\n%s%s", action, code, want, out.String(), errb.String())
		}
		return out.String()
	}
	log := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "systemctl.log"))
		os.Remove(filepath.Join(dir, "systemctl.log"))
		return string(b)
	}
	unitPath := "/etc/systemd/system/ec2sec.service"
	want := strings.NewReplacer(
		"\nExecStart="+systemd.BinPath+" run\n", "\nExecStart=/opt/ec2sec\\x20test/ec2sec \"run\"\n",
		"\nConditionFileIsExecutable="+systemd.BinPath+"\n", "\nConditionFileIsExecutable=/opt/ec2sec\\x20test/ec2sec\n",
	).Replace(systemd.Unit)

	run("status", ExitNotInstalled)
	run("install", ExitOK)
	got, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("installed unit is not the hardened unit for %s:\n%s", exe, got)
	}
	if l := log(); !strings.Contains(l, "enable ec2sec.service") || !strings.Contains(l, "daemon-reload") {
		t.Errorf("install did not enable and reload:\n%s", l)
	}
	run("status", ExitStopped)
	run("start", ExitOK)
	run("status", ExitOK)

	// Re-install while running: replaced and running again.
	log()
	if out := run("install", ExitOK); !strings.Contains(out, "re-installed") {
		t.Errorf("re-install said: %s", out)
	}
	if l := log(); !strings.Contains(l, "stop ec2sec.service\ndisable ec2sec.service\ndaemon-reload\n") || !strings.HasSuffix(l, "start ec2sec.service\n") {
		t.Errorf("re-install calls:\n%s", l)
	}
	if got, _ := os.ReadFile(unitPath); string(got) != want {
		t.Errorf("re-installed unit differs")
	}
	run("status", ExitOK)

	run("uninstall", ExitOK)
	if _, err := os.Stat(unitPath); !os.IsNotExist(err) {
		t.Errorf("unit still there after uninstall: %v", err)
	}
	run("status", ExitNotInstalled)
	if out := run("uninstall", ExitOK); !strings.Contains(out, "not installed") {
		t.Errorf("second uninstall said: %s", out)
	}

	// systemd 219 (Amazon Linux 2): install adds the drop-in the packages add, and the state
	// dir; an install on systemd 235 or newer removes it, and so does uninstall.
	dropIn := "/etc/systemd/system/ec2sec.service.d/" + systemd.DropInName
	os.Setenv("SYSTEMD_VERSION", "219")
	log()
	if out := run("install", ExitOK); !strings.Contains(out, "systemd 219 (before 235)") {
		t.Errorf("install on systemd 219 said: %s", out)
	}
	if got, err := os.ReadFile(dropIn); err != nil || string(got) != systemd.DropIn("ec2sec.service", 219) {
		t.Errorf("install on systemd 219: drop-in %v:\n%s", err, got)
	}
	if fi, err := os.Stat(systemd.StateDir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("install on systemd 219: state dir %v %v", fi, err)
	}
	if l := log(); !strings.HasSuffix(l, "--version\ndaemon-reload\n") {
		t.Errorf("install on systemd 219 did not reload after the drop-in:\n%s", l)
	}
	os.Setenv("SYSTEMD_VERSION", "252")
	run("install", ExitOK)
	if _, err := os.Lstat(filepath.Dir(dropIn)); !os.IsNotExist(err) {
		t.Errorf("install on systemd 252 left the drop-in of 219: %v", err)
	}
	os.Setenv("SYSTEMD_VERSION", "219")
	run("install", ExitOK)
	run("uninstall", ExitOK)
	os.Unsetenv("SYSTEMD_VERSION")
	if _, err := os.Lstat(filepath.Dir(dropIn)); !os.IsNotExist(err) {
		t.Errorf("uninstall left the drop-in: %v", err)
	}

	// A unit from the deb/rpm: install leaves it alone, uninstall points at the package.
	if os.Getenv("EC2SEC_NO_PKGDIR") != "" {
		return
	}
	if err := os.WriteFile("/usr/lib/systemd/system/ec2sec.service", []byte(systemd.Unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run("install", ExitOK); !strings.Contains(out, "system package") {
		t.Errorf("install over the packaged unit said: %s", out)
	}
	if _, err := os.Stat(unitPath); !os.IsNotExist(err) {
		t.Errorf("install wrote %s over a packaged unit", unitPath)
	}
	run("uninstall", ExitFailed)
}
