//go:build unix

package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
