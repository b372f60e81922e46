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

// fakePackage lays out an unpacked Linux Distributor zip (without deb and rpm, so install.sh
// takes its file-copy path) with a stand-in binary, and returns its directory.
func fakePackage(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pkg")
	os.MkdirAll(dir, 0o755)
	copyFile(t, "ssm/install.sh", filepath.Join(dir, "install.sh"), 0o644)
	copyFile(t, "ssm/uninstall.sh", filepath.Join(dir, "uninstall.sh"), 0o644)
	copyFile(t, "config.yaml", filepath.Join(dir, "config.yaml"), 0o644)
	copyFile(t, filepath.Join(testenv.RepoRoot(), "systemd", "ec2sec.service"), filepath.Join(dir, "ec2sec.service"), 0o644)
	copyFile(t, filepath.Join(testenv.RepoRoot(), "systemd", systemd.IMDSWatchName), filepath.Join(dir, systemd.IMDSWatchName), 0o644)
	if err := os.WriteFile(filepath.Join(dir, "ec2sec"), []byte("not really ec2sec\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// runScript runs `dash SCRIPT` from an unrelated directory, as SSM's `sh` would on Ubuntu,
// with EC2SEC_ROOT=root, and returns the exit code and the combined output.
func runScript(t *testing.T, script, root string) (int, string) {
	t.Helper()
	dash := testenv.Tool(t, "dash")
	cmd := exec.Command(dash, script)
	cmd.Dir = t.TempDir()
	cmd.Env = testenv.Environ("EC2SEC_ROOT=" + root)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	} else if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return 0, out.String()
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// installedUnit is the unit install.sh writes for its /usr/local/bin binary.
func installedUnit() string {
	return strings.NewReplacer(
		"\nExecStart="+systemd.BinPath+" run\n", "\nExecStart=/usr/local/bin/ec2sec run\n",
		"\nConditionFileIsExecutable="+systemd.BinPath+"\n", "\nConditionFileIsExecutable=/usr/local/bin/ec2sec\n",
	).Replace(systemd.Unit)
}

// installedWatchUnit is the IMDS watcher's unit install.sh writes for its /usr/local/bin binary.
func installedWatchUnit() string {
	return strings.NewReplacer(
		"\nExecStart="+systemd.BinPath+" imds-watch --resident\n", "\nExecStart=/usr/local/bin/ec2sec imds-watch --resident\n",
		"\nConditionFileIsExecutable="+systemd.BinPath+"\n", "\nConditionFileIsExecutable=/usr/local/bin/ec2sec\n",
	).Replace(systemd.IMDSWatchUnit)
}

func TestInstallScriptsInTempRoot(t *testing.T) {
	pkg := fakePackage(t)
	root := t.TempDir()
	bin := filepath.Join(root, "usr/local/bin/ec2sec")
	unit := filepath.Join(root, "etc/systemd/system/ec2sec.service")
	watchUnit := filepath.Join(root, "etc/systemd/system", systemd.IMDSWatchName)
	cfg := filepath.Join(root, "etc/ec2sec/config.yaml")

	code, out := runScript(t, filepath.Join(pkg, "install.sh"), root)
	if code != 0 {
		t.Fatalf("install.sh: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "not enabling or starting the service") {
		t.Errorf("install.sh did not say it skipped systemctl:\n%s", out)
	}
	if b, _ := os.ReadFile(bin); string(b) != "not really ec2sec\n" || mode(t, bin) != 0o755 {
		t.Errorf("binary: %q mode %v", b, mode(t, bin))
	}
	if b, _ := os.ReadFile(unit); string(b) != installedUnit() {
		t.Errorf("unit is not the hardened unit for /usr/local/bin/ec2sec:\n%s", b)
	}
	if b, _ := os.ReadFile(watchUnit); string(b) != installedWatchUnit() || installedWatchUnit() == systemd.IMDSWatchUnit {
		t.Errorf("watcher unit is not the shipped unit for /usr/local/bin/ec2sec:\n%s", b)
	}
	if mode(t, unit) != 0o644 || mode(t, watchUnit) != 0o644 || mode(t, cfg) != 0o644 {
		t.Errorf("modes: unit %v, watcher unit %v, config %v", mode(t, unit), mode(t, watchUnit), mode(t, cfg))
	}

	// Idempotent: a second run succeeds, replaces the binary, keeps the administrator's config.
	os.WriteFile(cfg, []byte("interval: 2h\n"), 0o644)
	os.WriteFile(filepath.Join(pkg, "ec2sec"), []byte("newer ec2sec\n"), 0o644)
	code, out = runScript(t, filepath.Join(pkg, "install.sh"), root)
	if code != 0 {
		t.Fatalf("second install.sh: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "interval: 2h\n" {
		t.Errorf("re-install overwrote the config: %q", b)
	}
	if b, _ := os.ReadFile(bin); string(b) != "newer ec2sec\n" {
		t.Errorf("re-install did not replace the binary: %q", b)
	}
	for _, d := range []string{"usr/local/bin", "etc/systemd/system"} {
		if m, _ := filepath.Glob(filepath.Join(root, d, ".*")); len(m) > 0 {
			t.Errorf("temporary files left: %v", m)
		}
	}

	code, out = runScript(t, filepath.Join(pkg, "uninstall.sh"), root)
	if code != 0 {
		t.Fatalf("uninstall.sh: exit %d\n%s", code, out)
	}
	if exists(bin) || exists(unit) || exists(watchUnit) {
		t.Errorf("uninstall left the binary or a unit")
	}
	if !exists(cfg) {
		t.Errorf("uninstall removed the config; upgrades need it kept")
	}
	if !strings.Contains(out, "not touching the service manager") {
		t.Errorf("uninstall.sh did not say it skipped systemctl:\n%s", out)
	}
	code, out = runScript(t, filepath.Join(pkg, "uninstall.sh"), root)
	if code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("second uninstall.sh: exit %d\n%s", code, out)
	}
}

// TestInstallScriptFailsLoudly: what SSM reads as failure is a non-zero exit.
func TestInstallScriptFailsLoudly(t *testing.T) {
	pkg := fakePackage(t)
	os.Remove(filepath.Join(pkg, "ec2sec"))
	root := t.TempDir()
	code, out := runScript(t, filepath.Join(pkg, "install.sh"), root)
	if code == 0 || !strings.Contains(out, "ec2sec missing") {
		t.Errorf("install.sh without a binary: exit %d\n%s", code, out)
	}
	// An unwritable target (a file where a directory must go) fails too.
	pkg = fakePackage(t)
	root = t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/local"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/local/bin"), nil, 0o644)
	if code, out := runScript(t, filepath.Join(pkg, "install.sh"), root); code == 0 {
		t.Errorf("install.sh into a broken root: exit 0\n%s", out)
	}
}
