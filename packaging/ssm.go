// Package packaging builds ec2sec's AWS Systems Manager Distributor package (one zip per
// platform and architecture, and the manifest.json that lists them with their sha256) from the
// binaries, deb and rpm that `make package` puts in dist/. Its tests check every shipped
// packaging file: the unit's packages, the SSM scripts, the Image Builder component, the IAM
// policy and the CloudFormation template.
package packaging

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Manifest is an SSM Distributor package manifest (schemaVersion 2.0).
type Manifest struct {
	SchemaVersion string `json:"schemaVersion"`
	Version       string `json:"version"`
	Publisher     string `json:"publisher"`
	Description   string `json:"description"`
	// Packages maps platform → platform version ("_any") → architecture → the zip to use.
	Packages map[string]map[string]map[string]PackageRef `json:"packages"`
	Files    map[string]FileInfo                         `json:"files"`
}

// PackageRef names the zip for one platform, version and architecture.
type PackageRef struct {
	File string `json:"file"`
}

// FileInfo carries a zip's checksums.
type FileInfo struct {
	Checksums map[string]string `json:"checksums"`
}

// LinuxPlatforms are the platform names the SSM Agent reports to Distributor, derived from
// /etc/os-release ID as PlatformKey does. One Linux zip per architecture serves them all: its
// install.sh picks dpkg or rpm at run time.
var LinuxPlatforms = []string{"amazon", "centos", "debian", "fedora", "oracle", "redhat", "rocky", "suse", "ubuntu"}

// PlatformKey returns the Distributor platform name for an /etc/os-release ID, as the SSM
// Agent derives it ("amzn" → "amazon", "rhel" → "redhat", "ol" → "oracle", "sles" → "suse";
// others as they are).
func PlatformKey(osReleaseID string) string {
	switch osReleaseID {
	case "amzn":
		return "amazon"
	case "rhel":
		return "redhat"
	case "ol":
		return "oracle"
	case "sles", "suse":
		return "suse"
	}
	return osReleaseID
}

// Archs maps Go's GOARCH to the architecture names of SSM manifests.
var Archs = map[string]string{"amd64": "x86_64", "arm64": "arm64"}

// Entry is one file of a zip: its name at the zip's root, where to read it, and its mode.
type Entry struct {
	Name string
	Src  string
	Mode os.FileMode
}

// rpmArchs maps GOARCH to rpm's architecture names, which nfpm puts in the rpm's file name.
var rpmArchs = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// Zips returns what goes into each zip, keyed by zip name, reading from the repository at repo
// and the build output at dist (deb and rpm under their conventional names).
func Zips(repo, dist string) (map[string][]Entry, error) {
	ssm := filepath.Join(repo, "packaging", "ssm")
	out := map[string][]Entry{}
	one := func(pattern string) (string, error) {
		m, err := filepath.Glob(filepath.Join(dist, pattern))
		if err != nil || len(m) != 1 {
			return "", fmt.Errorf("want exactly one %s in %s, found %d", pattern, dist, len(m))
		}
		return m[0], nil
	}
	for goarch, arch := range Archs {
		deb, err := one("ec2sec_*_" + goarch + ".deb")
		if err != nil {
			return nil, err
		}
		rpm, err := one("ec2sec-*." + rpmArchs[goarch] + ".rpm")
		if err != nil {
			return nil, err
		}
		out["ec2sec-linux-"+arch+".zip"] = []Entry{
			{"install.sh", filepath.Join(ssm, "install.sh"), 0o755},
			{"uninstall.sh", filepath.Join(ssm, "uninstall.sh"), 0o755},
			{"ec2sec", filepath.Join(dist, "ec2sec-linux-"+goarch), 0o755},
			{"ec2sec.service", filepath.Join(repo, "systemd", "ec2sec.service"), 0o644},
			{"ec2sec-imdswatch.service", filepath.Join(repo, "systemd", "ec2sec-imdswatch.service"), 0o644},
			{"config.yaml", filepath.Join(repo, "packaging", "config.yaml"), 0o644},
			{"ec2sec.deb", deb, 0o644},
			{"ec2sec.rpm", rpm, 0o644},
		}
	}
	out["ec2sec-windows-x86_64.zip"] = []Entry{
		{"install.ps1", filepath.Join(ssm, "install.ps1"), 0o644},
		{"uninstall.ps1", filepath.Join(ssm, "uninstall.ps1"), 0o644},
		{"ec2sec.exe", filepath.Join(dist, "ec2sec-windows-amd64.exe"), 0o755},
		{"config.yaml", filepath.Join(repo, "packaging", "config.yaml"), 0o644},
	}
	return out, nil
}

// WriteZip writes entries, in the given order, as a zip with every time set to mtime, so the
// same inputs always give the same bytes.
func WriteZip(w io.Writer, entries []Entry, mtime time.Time) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		b, err := os.ReadFile(e.Src)
		if err != nil {
			return fmt.Errorf("zip entry %s: %w", e.Name, err)
		}
		h := &zip.FileHeader{Name: e.Name, Method: zip.Deflate, Modified: mtime.UTC()}
		h.SetMode(e.Mode)
		f, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("zip entry %s: %w", e.Name, err)
		}
		if _, err := f.Write(b); err != nil {
			return fmt.Errorf("zip entry %s: %w", e.Name, err)
		}
	}
	return zw.Close()
}

// SSMVersion makes a package version acceptable as a Distributor version name, which allows
// only letters, digits, '_', '-' and '.': "0.0.0+g1a2b" becomes "0.0.0-g1a2b".
func SSMVersion(v string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, v)
}

// Build writes the zips and manifest.json into outDir and returns the manifest. The manifest's
// version is SSMVersion(version); publish with that as --version-name.
func Build(repo, dist, outDir, version string, mtime time.Time) (*Manifest, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	m := &Manifest{
		SchemaVersion: "2.0",
		Version:       SSMVersion(version),
		Publisher:     "ec2sec",
		Description:   "ec2sec EC2 host security agent: installs the binary and its service (systemd on Linux, a Windows service on Windows).",
		Packages:      map[string]map[string]map[string]PackageRef{},
		Files:         map[string]FileInfo{},
	}
	zips, err := Zips(repo, dist)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(zips))
	for n := range zips {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		var buf bytes.Buffer
		if err := WriteZip(&buf, zips[name], mtime); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(outDir, name), buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(buf.Bytes())
		m.Files[name] = FileInfo{Checksums: map[string]string{"sha256": hex.EncodeToString(sum[:])}}
	}
	for _, p := range LinuxPlatforms {
		archs := map[string]PackageRef{}
		for _, arch := range Archs {
			archs[arch] = PackageRef{File: "ec2sec-linux-" + arch + ".zip"}
		}
		m.Packages[p] = map[string]map[string]PackageRef{"_any": archs}
	}
	m.Packages["windows"] = map[string]map[string]PackageRef{"_any": {"x86_64": {File: "ec2sec-windows-x86_64.zip"}}}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(outDir, "manifest.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return m, nil
}
