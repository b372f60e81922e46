//go:build unix

package safefile

import (
	"os"
	"path/filepath"
	"testing"
)

// The unit's StateDirectory=ec2sec with DynamicUser=yes makes /var/lib/ec2sec a root-owned
// link to private/ec2sec: the agent must accept exactly that layout (or it would never keep
// state under systemd), and no link a user could have made.
func TestPrivateDirSystemdLink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the layout is root's: run as root")
	}
	layout := func(t *testing.T, privMode os.FileMode, target string) string {
		lib := t.TempDir()
		os.Chmod(lib, 0o755)
		priv := filepath.Join(lib, "private")
		if err := os.MkdirAll(filepath.Join(priv, "ec2sec"), 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chmod(priv, privMode)
		link := filepath.Join(lib, "ec2sec")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		return link
	}
	if err := PrivateDir(layout(t, 0o700, "private/ec2sec")); err != nil {
		t.Errorf("systemd's DynamicUser state dir refused: %v", err)
	}
	for name, dir := range map[string]string{
		"private open to others": layout(t, 0o755, "private/ec2sec"),
		"absolute target":        layout(t, 0o700, "/tmp"),
		"other name":             layout(t, 0o700, "private/other"),
	} {
		if err := PrivateDir(dir); err == nil {
			t.Errorf("%s: a symlinked state dir was accepted", name)
		}
	}
}

// Below systemd 235 (Amazon Linux 2) the installer makes /var/lib/ec2sec a plain directory,
// root's and 0700, and the agent runs as root (docs/install.md, "Amazon Linux 2 (systemd
// 219)"): the agent must accept it as its own, and the same directory owned by another user
// must still be refused.
func TestPrivateDirRootOwnedBefore235(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the layout is root's: run as root")
	}
	lib := t.TempDir()
	os.Chmod(lib, 0o755)
	dir := filepath.Join(lib, "ec2sec")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := PrivateDir(dir); err != nil {
		t.Errorf("root's 0700 state dir refused when running as root: %v", err)
	}
	if err := os.Chown(dir, 1500, 1500); err != nil {
		t.Fatal(err)
	}
	if err := PrivateDir(dir); err == nil {
		t.Error("a state dir owned by uid 1500 was accepted by root")
	}
}
