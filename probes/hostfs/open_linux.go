package hostfs

import (
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// openNoFollow opens the in-tree path p read-only with openat2(RESOLVE_IN_ROOT), so even a
// directory swapped for a symlink after resolve cannot lead outside the root. Kernels before
// 5.6 (or seccomp filters that refuse openat2) fall back to a plain O_NOFOLLOW open of the
// already-resolved path.
func (f *FS) openNoFollow(p string) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
	rootfd, err := unix.Open(f.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(rootfd)
		fd, err := unix.Openat2(rootfd, strings.TrimPrefix(p, "/"), &unix.OpenHow{
			Flags:   uint64(flags),
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == nil {
			return os.NewFile(uintptr(fd), f.HostPath(p)), nil
		}
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			return nil, &os.PathError{Op: "open", Path: p, Err: err}
		}
	}
	return os.OpenFile(f.HostPath(p), flags, 0)
}
