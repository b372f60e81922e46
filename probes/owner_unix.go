//go:build unix

package probes

import (
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
