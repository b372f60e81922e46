package service

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/ec2sec/ec2sec/systemd"
)

// unitDir is where kardianos/service writes a system unit; packagedDirs are where the deb and
// rpm put theirs.
const unitDir = "/etc/systemd/system"

var packagedDirs = [...]string{"/usr/lib/systemd/system", "/lib/systemd/system"}

// platformOptions makes the hardened unit the systemd template.
func platformOptions(opt map[string]any) error {
	t, err := systemd.Template()
	if err != nil {
		return err
	}
	opt["SystemdScript"] = t
	return nil
}

// supported accepts systemd only: the other Linux init systems would run the agent as root
// with none of the unit's hardening.
func supported(platform string) error {
	if platform != "linux-systemd" {
		return fmt.Errorf("service manager %q is not supported: ec2sec runs as a systemd service on Linux", platform)
	}
	return nil
}

func platformHost() host {
	return host{
		// Ours is installed when kardianos's unit file exists: its Install refuses to overwrite it.
		installed: func(controller) (bool, error) {
			_, err := os.Lstat(filepath.Join(unitDir, Name+".service"))
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
			return err == nil, err
		},
		adjust: adjustForSystemd,
		packaged: func() string {
			for _, d := range packagedDirs {
				p := filepath.Join(d, Name+".service")
				if _, err := os.Lstat(p); err == nil {
					return p
				}
			}
			return ""
		},
	}
}

func underSCM() bool { return false }

// adjustForSystemd adds, after an install where systemd is older than 235 (Amazon Linux 2),
// the drop-in the deb/rpm and SSM installers add too (systemd.DropIn) and the state directory
// it names, root's and 0700; it removes the drop-in after an uninstall, or after an install
// where systemd is 235 or newer (a stale one). A systemd whose version it cannot read is left
// alone.
func adjustForSystemd(installed bool, stdout io.Writer) error {
	dir := filepath.Join(unitDir, Name+".service.d")
	dropIn := filepath.Join(dir, systemd.DropInName)
	v := 0
	if installed {
		out, _ := exec.Command("systemctl", "--version").Output()
		if v = systemd.ParseVersion(string(out)); v == 0 {
			return nil
		}
	}
	if !installed || v >= systemd.DynamicUserVersion {
		if err := os.Remove(dropIn); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("remove %s: %w", dropIn, err)
		}
		os.Remove(dir) // only if empty: an administrator's drop-ins stay
		return reload()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("systemd %d: %w", v, err)
	}
	tmp := dropIn + ".new"
	if err := os.WriteFile(tmp, []byte(systemd.DropIn(Name+".service", v)), 0o644); err != nil {
		return fmt.Errorf("systemd %d: %w", v, err)
	}
	if err := os.Rename(tmp, dropIn); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("systemd %d: %w", v, err)
	}
	if err := os.MkdirAll(systemd.StateDir, 0o700); err != nil {
		return fmt.Errorf("systemd %d: state dir: %w", v, err)
	}
	if err := os.Chown(systemd.StateDir, 0, 0); err != nil {
		return fmt.Errorf("systemd %d: state dir: %w", v, err)
	}
	if err := os.Chmod(systemd.StateDir, 0o700); err != nil {
		return fmt.Errorf("systemd %d: state dir: %w", v, err)
	}
	fmt.Fprintf(stdout, "systemd %d (before %d): %s runs as root with a capability bounding set (%s)\n", v, systemd.DynamicUserVersion, Name, dropIn)
	return reload()
}

// reload makes systemd read the changed drop-in.
func reload() error {
	if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl daemon-reload: %v: %s", err, out)
	}
	return nil
}
