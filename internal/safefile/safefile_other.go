//go:build !unix

package safefile

import (
	"fmt"
	"io/fs"
)

const (
	noFollow  = 0
	nonBlock  = 0
	directory = 0
)

func isLoop(error) bool   { return false }
func isNotDir(error) bool { return false }

// Windows: the install script sets the ACLs of the agent's directories; files have no
// POSIX owner or mode to check here.
func checkOwner(string, fs.FileInfo, Trust) error { return nil }

func checkOwnerOnly(path string, fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s: a symlink is not accepted", path)
	}
	return nil
}

// systemdStateLink: there is no systemd here, so no link of its making to follow.
func systemdStateLink(string, fs.FileInfo) bool { return false }
