package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
