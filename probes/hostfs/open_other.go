//go:build !linux

package hostfs

import (
	"io/fs"
	"os"
)

// openNoFollow opens the already-resolved in-tree path p; O_NOFOLLOW is not portable, so the
// caller's before/after SameFile comparison is what guards against a swap.
func (f *FS) openNoFollow(p string) (*os.File, error) {
	return os.Open(f.HostPath(p))
}

// openDir opens a directory the walk resolved (and saw was one).
func openDir(hostPath string) (*os.File, error) { return os.Open(hostPath) }

// sameFile reports whether a and b describe the same file (every FileInfo here is os's).
func sameFile(a, b fs.FileInfo) bool { return os.SameFile(a, b) }
