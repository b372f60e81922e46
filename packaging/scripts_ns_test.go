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
	"github.com/ec2sec/ec2sec/systemd"
)

// fakeSystemctl logs its arguments and succeeds, unless they are $SYSTEMCTL_FAIL; the scripts
// must call it exactly as expected. `systemctl --version` (not logged) answers as systemd
// $SYSTEMD_VERSION (default 252, Debian 12's) does.
const fakeSystemctl = "#!/bin/sh\n" +
	"if [ \"$*\" = --version ]; then printf 'systemd %s (%s-1)\\n+PAM +AUDIT +SELINUX\\n' \"${SYSTEMD_VERSION:-252}\" \"${SYSTEMD_VERSION:-252}\"; exit 0; fi\n" +
	"echo \"$*\" >> \"$SYSTEMCTL_LOG\"\n[ \"$*\" != \"${SYSTEMCTL_FAIL:-}\" ]\n"

// inNamespace runs sh code in a private mount namespace where /etc, /usr/local/bin, /var/lib
// and /run/systemd are empty tmpfs (so the host's files are never touched), /run/systemd/system
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
	setup := "set -e; M=" + mount + "; D=" + mkdir + "; $M -t tmpfs tmpfs /etc; $M -t tmpfs tmpfs /usr/local/bin; $M -t tmpfs tmpfs /var/lib; $D -p /run/systemd; $M -t tmpfs tmpfs /run/systemd; "
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

// dropInName is the drop-in the install scripts write for each unit where systemd is older
// than 235 (Amazon Linux 2's 219).
const dropInName = systemd.DropInName

// dropIns parses the output of `show` below: "== NAME" lines, each followed by a file's text.
func dropIns(out, prefix string) map[string]string {
	m := map[string]string{}
	var cur string
	for _, l := range strings.SplitAfter(out, "\n") {
		if name, ok := strings.CutPrefix(l, "== "+prefix+" "); ok {
			cur = strings.TrimSpace(name)
			m[cur] = ""
			continue
		}
		if strings.HasPrefix(l, "== ") || strings.HasPrefix(l, "-- ") {
			cur = ""
		}
		if cur != "" {
			m[cur] += l
		}
	}
	return m
}

// TestSystemdBefore235 runs the package's and the Distributor's scripts on a host whose
// systemctl says "systemd 219" (Amazon Linux 2): each unit gets a drop-in that runs it as
// root bounded to the unit's capabilities, and /var/lib/ec2sec is made root's, 0700. With
// systemd 252 there is none, and a stale one (systemd upgraded) is removed; uninstall and
// package removal remove them, a package upgrade keeps them.
func TestSystemdBefore235(t *testing.T) {
	nfpm, _ := filepath.Abs("nfpm")
	pkg := fakePackage(t)
	const d = "/etc/systemd/system/"
	code := `
show() { for u in ec2sec.service ec2sec-imdswatch.service; do echo "== $1 $u"; cat ` + d + `$u.d/` + dropInName + `; done; echo "-- state: $(stat -c '%a %u %F' /var/lib/ec2sec 2>&1)"; }
left() { echo "-- left $1: $(ls -d ` + d + `*.d ` + d + `*.d/* 2>/dev/null | tr '\n' ' ')"; }
export SYSTEMD_VERSION=219
"$DASH" ` + nfpm + `/postinstall.sh configure; echo "postinstall 219 $?"
show pkg
SYSTEMD_VERSION=252 "$DASH" ` + nfpm + `/postinstall.sh configure; echo "postinstall 252 $?"
left "after an upgrade to 252"
"$DASH" ` + nfpm + `/postinstall.sh 2; "$DASH" ` + nfpm + `/postremove.sh 1; echo "rpm upgrade $?"
"$DASH" ` + nfpm + `/postremove.sh upgrade; echo "deb upgrade $?"
left "after package upgrades"
"$DASH" ` + nfpm + `/postremove.sh 0; echo "postremove $?"
left "after rpm -e"
"$DASH" ` + nfpm + `/postinstall.sh configure; "$DASH" ` + nfpm + `/postremove.sh remove; echo "postremove $?"
left "after dpkg --remove"
rm -rf /var/lib/ec2sec
"$DASH" ` + pkg + `/install.sh; echo "install 219 $?"
show ssm
SYSTEMD_VERSION=252 "$DASH" ` + pkg + `/install.sh; echo "install 252 $?"
left "after install.sh on 252"
"$DASH" ` + pkg + `/install.sh; "$DASH" ` + pkg + `/uninstall.sh; echo "uninstall $?"
left "after uninstall.sh"
`
	out, _ := inNamespace(t, code, true, true)
	for _, w := range []string{
		"postinstall 219 0\n", "postinstall 252 0\n", "rpm upgrade 0\n", "deb upgrade 0\n", "postremove 0\n", "install 219 0\n", "install 252 0\n", "uninstall 0\n",
		"-- state: 700 0 directory\n",
		"-- left after an upgrade to 252: \n",
		"-- left after package upgrades: " + d + "ec2sec-imdswatch.service.d " + d + "ec2sec-imdswatch.service.d/" + dropInName + " " + d + "ec2sec.service.d " + d + "ec2sec.service.d/" + dropInName + " \n",
		"-- left after rpm -e: \n", "-- left after dpkg --remove: \n",
		"-- left after install.sh on 252: \n", "-- left after uninstall.sh: \n",
		"systemd 219 (before 235)",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q\n%s", w, out)
		}
	}
	if strings.Count(out, "-- state: 700 0 directory\n") != 2 {
		t.Errorf("the state dir is not root's and 0700 after both installs:\n%s", out)
	}
	pkgDrop, ssmDrop := dropIns(out, "pkg"), dropIns(out, "ssm")
	want := map[string][]string{
		"ec2sec.service": {
			"CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE",
			"MemoryLimit=128M",
		},
		"ec2sec-imdswatch.service": {
			// CAP_BPF and CAP_PERFMON are names systemd 219 may not parse: CAP_SYS_ADMIN
			// stands for them, and for the private cgroup2 mount of a cgroup v1 host.
			"CapabilityBoundingSet=CAP_SYS_ADMIN CAP_NET_ADMIN CAP_SYS_PTRACE",
			"MemoryLimit=64M",
		},
	}
	common := []string{
		"[Service]", "User=root", "DynamicUser=no", "ProtectSystem=full", "ReadWriteDirectories=/var/lib/ec2sec",
		"StartLimitInterval=600", "StartLimitBurst=5", "SystemCallFilter=", "SystemCallErrorNumber=EPERM",
	}
	for u, keys := range want {
		text := pkgDrop[u]
		if !strings.HasPrefix(text, "# Written by the ec2sec installer: this host's systemd (219) is older than 235") {
			t.Errorf("%s: no drop-in from postinstall.sh:\n%s", u, out)
			continue
		}
		if want := systemd.DropIn(u, 219); text != want {
			t.Errorf("%s: postinstall.sh's drop-in is not systemd.DropIn's (ec2sec service install writes that):\n%s\n---\n%s", u, text, want)
		}
		if ssmDrop[u] != text {
			t.Errorf("%s: install.sh's drop-in differs from postinstall.sh's:\n%s\n---\n%s", u, ssmDrop[u], text)
		}
		lines := map[string]bool{}
		for _, l := range strings.Split(text, "\n") {
			lines[l] = true
		}
		for _, k := range append(keys, common...) {
			if !lines[k] {
				t.Errorf("%s: drop-in lacks %q:\n%s", u, k, text)
			}
		}
		// Denied by the unit, so by the drop-in: a root process holding CAP_SYS_PTRACE must not
		// trace or write another's memory; capset stays (it only narrows, and the agent drops
		// its capabilities with it).
		filter := text[strings.Index(text, "SystemCallFilter=~")+len("SystemCallFilter=~"):]
		filter = " " + filter[:strings.IndexByte(filter, '\n')]
		for _, c := range []string{"ptrace", "process_vm_writev", "process_vm_readv", "pidfd_getfd", "setuid", "mount", "init_module", "kexec_load"} {
			if c == "mount" && u == systemd.IMDSWatchName {
				continue
			}
			if !strings.Contains(filter+" ", " "+c+" ") {
				t.Errorf("%s: drop-in's filter does not deny %s: %s", u, c, filter)
			}
		}
		// The watcher mounts cgroup2 privately on a cgroup v1 host (Amazon Linux 2) and
		// detaches it; the agent mounts nothing.
		for _, c := range []string{"mount", "umount2"} {
			if denied := strings.Contains(filter+" ", " "+c+" "); denied == (u == systemd.IMDSWatchName) {
				t.Errorf("%s: drop-in's filter denies %s: %v", u, c, denied)
			}
		}
		if strings.Contains(filter+" ", " capset ") || (u != "ec2sec.service") == strings.Contains(filter+" ", " bpf ") {
			t.Errorf("%s: filter: capset must stay allowed, bpf only for the watcher: %s", u, filter)
		}
		verifyDropIn(t, u, text)
		unit := systemd.Unit
		if u == systemd.IMDSWatchName {
			unit = systemd.IMDSWatchUnit
		}
		// The same denials as the unit, group by group, so a change to the unit's filter that
		// the drop-in does not follow fails here.
		want := deniedByUnit(t, unit)
		delete(want, "capset")
		if u == systemd.IMDSWatchName {
			delete(want, "mount")
			delete(want, "umount2")
		}
		got := map[string]bool{}
		for _, c := range strings.Fields(filter) {
			got[c] = true
		}
		for c := range want {
			if !got[c] {
				t.Errorf("%s: the unit denies %s, the drop-in does not", u, c)
			}
		}
		for c := range got {
			if !want[c] {
				t.Errorf("%s: the drop-in denies %s, the unit does not", u, c)
			}
		}
	}
}

// deniedByUnit returns the system calls unit's SystemCallFilter= lines deny, its @groups
// expanded by this host's `systemd-analyze syscall-filter`, less those a later allow line
// gives back (the watcher's bpf).
func deniedByUnit(t *testing.T, unit string) map[string]bool {
	t.Helper()
	sa := testenv.Tool(t, "systemd-analyze")
	var expand func(name string, into map[string]bool, on bool)
	expand = func(name string, into map[string]bool, on bool) {
		if !strings.HasPrefix(name, "@") {
			into[name] = on
			return
		}
		out, err := exec.Command(sa, "syscall-filter", "--no-pager", name).Output()
		if err != nil {
			t.Fatalf("systemd-analyze syscall-filter %s: %v", name, err)
		}
		for _, l := range strings.Split(string(out), "\n")[1:] {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				expand(l, into, on)
			}
		}
	}
	denied := map[string]bool{}
	for _, l := range strings.Split(unit, "\n") {
		v, ok := strings.CutPrefix(l, "SystemCallFilter=")
		if !ok || strings.HasPrefix(v, "@system-service") {
			continue
		}
		deny := strings.HasPrefix(v, "~")
		for _, name := range strings.Fields(strings.TrimPrefix(v, "~")) {
			expand(name, denied, deny)
		}
	}
	for c, on := range denied {
		if !on {
			delete(denied, c)
		}
	}
	if !denied["ptrace"] || !denied["mount"] || len(denied) < 50 {
		t.Fatalf("the unit's denials did not expand: %v", denied)
	}
	return denied
}

// verifyDropIn runs `systemd-analyze verify` on the shipped unit with the drop-in beside it
// (it reads NAME.d/ next to the unit file): no unknown key, no bad value, and the only
// complaint the MemoryLimit= this systemd (252) calls deprecated, which 219 needs.
func verifyDropIn(t *testing.T, name, dropIn string) {
	t.Helper()
	sa := testenv.Tool(t, "systemd-analyze")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unit := systemd.Unit
	if name == systemd.IMDSWatchName {
		unit = systemd.IMDSWatchUnit
	}
	os.Mkdir(filepath.Join(dir, name+".d"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.ReplaceAll(unit, systemd.BinPath, exe)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".d", dropInName), []byte(dropIn), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", filepath.Join(dir, name)).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify %s with the drop-in: %v\n%s", name, err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.Contains(l, "Unit uses MemoryLimit=; please use MemoryMax= instead") {
			t.Errorf("%s with the drop-in: systemd-analyze verify: %s", name, l)
		}
	}
	// The same check must see a mistake in the drop-in.
	os.WriteFile(filepath.Join(dir, name+".d", dropInName), []byte(dropIn+"ReadWriteDirectory=/var/lib/ec2sec\n"), 0o644)
	if out, _ := exec.Command(sa, "verify", filepath.Join(dir, name)).CombinedOutput(); !strings.Contains(string(out), "Unknown key") {
		t.Errorf("systemd-analyze verify did not see an unknown key in the drop-in:\n%s", out)
	}
}
