//go:build unix

package probes

import (
	"fmt"
	"io/fs"
	"syscall"
)

// fileOwner returns the uid owning the file fi describes; ok is false where the platform
// does not say (Windows has ACLs, not a uid).
func fileOwner(fi fs.FileInfo) (uid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, false
	}
	return int(st.Uid), true
}

// fileID returns "dev:ino" of the file fi describes: the same file reached by two paths (a
// link, a hard link) is one file. ok is false where the platform does not say.
func fileID(fi fs.FileInfo) (id string, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", false
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), true
}

// hardLinked reports whether the file has more than one name (a hard link to it exists).
func hardLinked(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink > 1
}
