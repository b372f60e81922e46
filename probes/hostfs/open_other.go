//go:build !linux

package hostfs

import "os"

// openNoFollow opens the already-resolved in-tree path p; O_NOFOLLOW is not portable, so the
// caller's before/after SameFile comparison is what guards against a swap.
func (f *FS) openNoFollow(p string) (*os.File, error) {
	return os.Open(f.HostPath(p))
}

// openDir opens a directory the walk resolved (and saw was one).
func openDir(hostPath string) (*os.File, error) { return os.Open(hostPath) }
