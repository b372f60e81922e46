package packaging

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"debug/pe"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/systemd"
)

// What TestPackage stamps into the build.
const (
	testVersion    = "v1.2.3"
	testPkgVersion = "1.2.3"
	testCommit     = "0123456789abcdef0123456789abcdef01234567"
	testEpoch      = "1700000000"
)

// makePackage runs `make package` in src with the output in dist, stamping the test version.
func makePackage(t *testing.T, src, dist, tools string) {
	t.Helper()
	cmd := exec.Command("make", "-s", "-C", src, "package",
		"DIST="+dist, "TOOLS="+tools, "VERSION="+testVersion, "COMMIT="+testCommit, "SOURCE_DATE_EPOCH="+testEpoch)
	cmd.Env = testenv.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package in %s: %v\n%s", src, err, out)
	}
}

// TestPackage builds every release artefact once (`make package`: three binaries, two debs, two
// rpms, the Distributor zips and manifest) and checks them; then builds again from a copy of
// the source elsewhere and requires identical bytes.
func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds all release artefacts")
	}
	nfpm := testenv.Tool(t, "nfpm")
	testenv.Tool(t, "make")
	repo := testenv.RepoRoot()
	dist := filepath.Join(t.TempDir(), "dist")
	makePackage(t, repo, dist, filepath.Dir(nfpm))

	t.Run("binaries", func(t *testing.T) { checkBinaries(t, repo, dist) })
	t.Run("deb", func(t *testing.T) { checkDebs(t, dist) })
	t.Run("rpm", func(t *testing.T) { checkRPMs(t, dist) })
	t.Run("manifest", func(t *testing.T) { checkManifest(t, dist) })
	t.Run("zips", func(t *testing.T) { checkZips(t, dist) })
	t.Run("install-from-zip", func(t *testing.T) { checkInstallFromZip(t, dist) })
	t.Run("reproducible", func(t *testing.T) { checkReproducible(t, repo, dist, filepath.Dir(nfpm)) })
}

func checkBinaries(t *testing.T, repo, dist string) {
	for name, machine := range map[string]elf.Machine{"ec2sec-linux-amd64": elf.EM_X86_64, "ec2sec-linux-arm64": elf.EM_AARCH64} {
		f, err := elf.Open(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != machine {
			t.Errorf("%s: machine %v, want %v", name, f.Machine, machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked (CGO_ENABLED=0 expected)", name)
			}
		}
		f.Close()
	}
	pf, err := pe.Open(filepath.Join(dist, "ec2sec-windows-amd64.exe"))
	if err != nil {
		t.Fatal(err)
	}
	if pf.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
		t.Errorf("windows binary machine %#x", pf.Machine)
	}
	pf.Close()
	// -trimpath: no build-machine path in any binary.
	for _, name := range []string{"ec2sec-linux-amd64", "ec2sec-linux-arm64", "ec2sec-windows-amd64.exe"} {
		b, _ := os.ReadFile(filepath.Join(dist, name))
		for _, p := range []string{repo, os.Getenv("HOME") + "/go/pkg/mod"} {
			if len(p) > 5 && bytes.Contains(b, []byte(p)) {
				t.Errorf("%s contains the build path %s (missing -trimpath?)", name, p)
			}
		}
	}
	out, err := exec.Command(filepath.Join(dist, "ec2sec-linux-amd64"), "version").Output()
	if err != nil {
		t.Fatalf("ec2sec version: %v", err)
	}
	if !strings.Contains(string(out), "ec2sec "+testVersion+"\n") || !strings.Contains(string(out), "commit "+testCommit+"\n") {
		t.Errorf("version and commit not stamped:\n%s", out)
	}
}

var debArch = map[string]string{"amd64": "amd64", "arm64": "arm64"}

func checkDebs(t *testing.T, dist string) {
	dpkg := testenv.Tool(t, "dpkg-deb")
	for _, arch := range []string{"amd64", "arm64"} {
		deb := filepath.Join(dist, "ec2sec_"+testPkgVersion+"-1_"+arch+".deb")
		out, err := exec.Command(dpkg, "-c", deb).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -c %s: %v", deb, err)
		}
		files := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(l)
			files[f[len(f)-1]] = f[0]
		}
		for path, perm := range map[string]string{
			"./usr/bin/ec2sec":                                  "-rwxr-xr-x",
			"./usr/lib/systemd/system/ec2sec.service":           "-rw-r--r--",
			"./usr/lib/systemd/system/ec2sec-imdswatch.service": "-rw-r--r--",
			"./etc/ec2sec/config.yaml":                          "-rw-r--r--",
		} {
			if files[path] != perm {
				t.Errorf("%s: %s has %q, want %s\n%s", filepath.Base(deb), path, files[path], perm, out)
			}
		}
		field := func(name string) string {
			b, err := exec.Command(dpkg, "-f", deb, name).Output()
			if err != nil {
				t.Fatalf("dpkg-deb -f %s: %v", name, err)
			}
			return strings.TrimSpace(string(b))
		}
		if field("Package") != "ec2sec" || field("Version") != testPkgVersion+"-1" || field("Architecture") != debArch[arch] {
			t.Errorf("%s: control %s %s %s", deb, field("Package"), field("Version"), field("Architecture"))
		}
		ctl := t.TempDir()
		if out, err := exec.Command(dpkg, "-e", deb, ctl).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
		}
		if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(b)) != "/etc/ec2sec/config.yaml" {
			t.Errorf("conffiles: %q", b)
		}
		for script, want := range map[string]string{
			"postinst": "systemctl enable ec2sec.service ec2sec-imdswatch.service",
			"prerm":    "systemctl stop ec2sec.service ec2sec-imdswatch.service",
		} {
			b, err := os.ReadFile(filepath.Join(ctl, script))
			if err != nil || !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q (%v)", script, want, err)
			}
		}
		// The units inside are the repository's, byte for byte.
		for name, text := range map[string]string{"ec2sec.service": systemd.Unit, systemd.IMDSWatchName: systemd.IMDSWatchUnit} {
			unit, err := exec.Command("sh", "-c", `"$0" --fsys-tarfile "$1" | tar -xOf - ./usr/lib/systemd/system/$2`, dpkg, deb, name).Output()
			if err != nil || string(unit) != text {
				t.Errorf("%s in %s differs from systemd/%s (%v)", name, deb, name, err)
			}
		}
	}
}

func checkRPMs(t *testing.T, dist string) {
	rpm := testenv.Tool(t, "rpm")
	for _, arch := range []string{"x86_64", "aarch64"} {
		p := filepath.Join(dist, "ec2sec-"+testPkgVersion+"-1."+arch+".rpm")
		out, err := exec.Command(rpm, "-qlp", p).Output()
		if err != nil {
			t.Fatalf("rpm -qlp %s: %v", p, err)
		}
		got := strings.Fields(string(out))
		sort.Strings(got)
		want := []string{"/etc/ec2sec", "/etc/ec2sec/config.yaml", "/usr/bin/ec2sec", "/usr/lib/systemd/system/ec2sec-imdswatch.service", "/usr/lib/systemd/system/ec2sec.service"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rpm -qlp %s: %v, want %v", filepath.Base(p), got, want)
		}
		flags, _ := exec.Command(rpm, "-qp", "--qf", `[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:perms}\n]`, p).Output()
		for _, w := range []string{"/etc/ec2sec/config.yaml cn -rw-r--r--", "/usr/bin/ec2sec  -rwxr-xr-x"} {
			if !strings.Contains(string(flags), w+"\n") {
				t.Errorf("%s: no %q in\n%s", filepath.Base(p), w, flags)
			}
		}
		info, _ := exec.Command(rpm, "-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}", p).Output()
		if string(info) != "ec2sec "+testPkgVersion+" 1 "+arch {
			t.Errorf("rpm header: %q", info)
		}
		scripts, _ := exec.Command(rpm, "-qp", "--scripts", p).Output()
		for _, w := range []string{"postinstall scriptlet", "preuninstall scriptlet", "systemctl enable ec2sec.service ec2sec-imdswatch.service", "systemctl stop ec2sec.service ec2sec-imdswatch.service"} {
			if !strings.Contains(string(scripts), w) {
				t.Errorf("%s scripts lack %q", filepath.Base(p), w)
			}
		}
	}
}

func checkManifest(t *testing.T, dist string) {
	var m Manifest
	strictJSON(t, filepath.Join(dist, "ssm", "manifest.json"), &m)
	if m.SchemaVersion != "2.0" || m.Version != testPkgVersion || m.Publisher == "" {
		t.Errorf("manifest header: %q %q %q", m.SchemaVersion, m.Version, m.Publisher)
	}
	want := append([]string{"windows"}, LinuxPlatforms...)
	sort.Strings(want)
	var got []string
	used := map[string]bool{}
	for platform, versions := range m.Packages {
		got = append(got, platform)
		if len(versions) != 1 || versions["_any"] == nil {
			t.Errorf("%s: versions %v, want only _any", platform, versions)
		}
		for arch, ref := range versions["_any"] {
			if arch != "x86_64" && arch != "arm64" {
				t.Errorf("%s: architecture %q is not an SSM name", platform, arch)
			}
			if _, ok := m.Files[ref.File]; !ok {
				t.Errorf("%s/%s: %s is not in files", platform, arch, ref.File)
			}
			if strings.Contains(ref.File, "windows") != (platform == "windows") || !strings.Contains(ref.File, arch) {
				t.Errorf("%s/%s points at %s", platform, arch, ref.File)
			}
			used[ref.File] = true
		}
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("platforms %v, want %v", got, want)
	}
	zips, _ := filepath.Glob(filepath.Join(dist, "ssm", "*.zip"))
	if len(zips) != len(m.Files) || len(zips) != 3 {
		t.Errorf("%d zips on disk, %d in the manifest, want 3", len(zips), len(m.Files))
	}
	for name, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(dist, "ssm", name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if f.Checksums["sha256"] != hex.EncodeToString(sum[:]) || len(f.Checksums) != 1 {
			t.Errorf("%s: checksums %v, file sha256 %x", name, f.Checksums, sum)
		}
		if !used[name] {
			t.Errorf("%s is listed but no platform uses it", name)
		}
	}
}

func zipFiles(t *testing.T, path string) map[string]*zip.File {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zr.Close() })
	out := map[string]*zip.File{}
	for _, f := range zr.File {
		out[f.Name] = f
	}
	return out
}

func readZip(t *testing.T, f *zip.File) []byte {
	t.Helper()
	r, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkZips(t *testing.T, dist string) {
	layouts := map[string][]string{
		"ec2sec-linux-x86_64.zip":   {"config.yaml", "ec2sec", "ec2sec-imdswatch.service", "ec2sec.deb", "ec2sec.rpm", "ec2sec.service", "install.sh", "uninstall.sh"},
		"ec2sec-linux-arm64.zip":    {"config.yaml", "ec2sec", "ec2sec-imdswatch.service", "ec2sec.deb", "ec2sec.rpm", "ec2sec.service", "install.sh", "uninstall.sh"},
		"ec2sec-windows-x86_64.zip": {"config.yaml", "ec2sec.exe", "install.ps1", "uninstall.ps1"},
	}
	same := func(zipName string, entry *zip.File, src string) {
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readZip(t, entry), want) {
			t.Errorf("%s: %s differs from %s", zipName, entry.Name, src)
		}
	}
	for name, want := range layouts {
		files := zipFiles(t, filepath.Join(dist, "ssm", name))
		var got []string
		for n := range files {
			got = append(got, n)
		}
		sort.Strings(got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s holds %v, want %v at its root", name, got, want)
		}
		if strings.Contains(name, "linux") {
			goarch := map[string]string{"ec2sec-linux-x86_64.zip": "amd64", "ec2sec-linux-arm64.zip": "arm64"}[name]
			same(name, files["ec2sec"], filepath.Join(dist, "ec2sec-linux-"+goarch))
			same(name, files["ec2sec.deb"], filepath.Join(dist, "ec2sec_"+testPkgVersion+"-1_"+goarch+".deb"))
			same(name, files["ec2sec.rpm"], filepath.Join(dist, "ec2sec-"+testPkgVersion+"-1."+rpmArchs[goarch]+".rpm"))
			same(name, files["install.sh"], "ssm/install.sh")
			same(name, files["ec2sec.service"], filepath.Join(testenv.RepoRoot(), "systemd", "ec2sec.service"))
			same(name, files[systemd.IMDSWatchName], filepath.Join(testenv.RepoRoot(), "systemd", systemd.IMDSWatchName))
			if files["ec2sec"].Mode().Perm() != 0o755 {
				t.Errorf("%s: ec2sec mode %v", name, files["ec2sec"].Mode())
			}
		} else {
			same(name, files["ec2sec.exe"], filepath.Join(dist, "ec2sec-windows-amd64.exe"))
			same(name, files["install.ps1"], "ssm/install.ps1")
		}
	}
}

// checkInstallFromZip unpacks the real x86_64 zip and runs its install.sh and uninstall.sh
// against a temporary root, then runs the installed binary.
func checkInstallFromZip(t *testing.T, dist string) {
	pkg := t.TempDir()
	for name, f := range zipFiles(t, filepath.Join(dist, "ssm", "ec2sec-linux-x86_64.zip")) {
		if err := os.WriteFile(filepath.Join(pkg, name), readZip(t, f), f.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	if code, out := runScript(t, filepath.Join(pkg, "install.sh"), root); code != 0 {
		t.Fatalf("install.sh: exit %d\n%s", code, out)
	}
	out, err := exec.Command(filepath.Join(root, "usr/local/bin/ec2sec"), "version").Output()
	if err != nil || !strings.Contains(string(out), testVersion) {
		t.Errorf("installed binary: %v\n%s", err, out)
	}
	if code, out := runScript(t, filepath.Join(pkg, "install.sh"), root); code != 0 {
		t.Fatalf("second install.sh: exit %d\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", systemd.IMDSWatchName)); err != nil || string(b) != installedWatchUnit() {
		t.Errorf("installed watcher unit: %v\n%s", err, b)
	}
	if code, out := runScript(t, filepath.Join(pkg, "uninstall.sh"), root); code != 0 || exists(filepath.Join(root, "usr/local/bin/ec2sec")) || exists(filepath.Join(root, "etc/systemd/system", systemd.IMDSWatchName)) {
		t.Fatalf("uninstall.sh: exit %d\n%s", code, out)
	}
}

// checkReproducible builds again from a copy of the source at another path and compares every
// artefact's sha256 (dist/SHA256SUMS).
func checkReproducible(t *testing.T, repo, dist, tools string) {
	git, err := exec.LookPath("git")
	if err != nil {
		testenv.Missing(t, "git is needed to list the source files")
	}
	list, err := exec.Command(git, "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	src := filepath.Join(t.TempDir(), "elsewhere", "ec2sec-src")
	for _, f := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		fi, err := os.Lstat(filepath.Join(repo, f))
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755)
		copyFile(t, filepath.Join(repo, f), filepath.Join(src, f), fi.Mode().Perm())
	}
	dist2 := filepath.Join(t.TempDir(), "out", "dist")
	makePackage(t, src, dist2, tools)
	a, _ := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	b, _ := os.ReadFile(filepath.Join(dist2, "SHA256SUMS"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("two builds of the same source differ:\n%s\n---\n%s", a, b)
	}
	if n := strings.Count(string(a), "\n"); n != 13 {
		t.Errorf("SHA256SUMS lists %d files, want 13 (3 binaries, 2 debs, 2 rpms, 3 zips, manifest, 2 forwarder zips)", n)
	}
}
