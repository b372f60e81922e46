//go:build unix

package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

const (
	noFollow  = syscall.O_NOFOLLOW
	nonBlock  = syscall.O_NONBLOCK
	directory = syscall.O_DIRECTORY
)

func isLoop(err error) bool    { return errors.Is(err, syscall.ELOOP) }
func isNotDir(err error) bool  { return errors.Is(err, syscall.ENOTDIR) }
func owner(fi fs.FileInfo) int { return int(fi.Sys().(*syscall.Stat_t).Uid) }

func checkOwner(path string, fi fs.FileInfo, trust Trust) error {
	uid, me := owner(fi), os.Geteuid()
	if uid != me && (trust == Agent || uid != 0) {
		who := "the agent's user"
		if trust == Admin {
			who = "root or the agent's user"
		}
		return fmt.Errorf("%s: owned by uid %d, not by %s (uid %d): refusing it", path, uid, who, me)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s: group- or world-writable (mode %04o): refusing it (chmod go-w)", path, fi.Mode().Perm())
	}
	return nil
}

// checkOwnerOnly: a directory of the agent's own user (its mode is then the agent's to fix).
func checkOwnerOnly(path string, fi fs.FileInfo) error {
	if uid, me := owner(fi), os.Geteuid(); uid != me {
		return fmt.Errorf("%s: owned by uid %d, not by the agent's user (uid %d): refusing it", path, uid, me)
	}
	return nil
}

// systemdStateLink reports whether dir, a symlink (lfi its lstat), is the link systemd makes
// for StateDirectory= under DynamicUser=yes: <parent>/<name> -> private/<name>, the link, the
// parent and <parent>/private owned by root, private open to nobody else. Only root could
// have made that, so following it hands the agent nothing a local user chose.
func systemdStateLink(dir string, lfi fs.FileInfo) bool {
	name := filepath.Base(dir)
	if target, err := os.Readlink(dir); err != nil || target != "private/"+name || owner(lfi) != 0 {
		return false
	}
	parent := filepath.Dir(dir)
	pfi, err := os.Lstat(parent)
	if err != nil || !pfi.IsDir() || owner(pfi) != 0 || pfi.Mode().Perm()&0o022 != 0 {
		return false
	}
	priv, err := os.Lstat(filepath.Join(parent, "private"))
	return err == nil && priv.IsDir() && owner(priv) == 0 && priv.Mode().Perm()&0o077 == 0
}
