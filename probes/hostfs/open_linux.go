package hostfs

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// openNoFollow opens the in-tree path p read-only with openat2(RESOLVE_IN_ROOT) against the
// root the FS holds (or one opened for the call), so even a directory swapped for a symlink
// after resolve cannot lead outside the root. Kernels before 5.6 (or seccomp filters that
// refuse openat2) fall back to a plain O_NOFOLLOW open of the already-resolved path.
func (f *FS) openNoFollow(p string) (*os.File, error) {
	flags := openFlags
	rootfd, held := f.rfd.acquire()
	var err error
	if held {
		defer f.rfd.release()
	} else if rootfd, err = unix.Open(f.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		defer unix.Close(rootfd)
	}
	if err == nil {
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

// openDir opens a directory the walk resolved; O_NONBLOCK, should a FIFO be swapped in.
func openDir(hostPath string) (*os.File, error) {
	return os.OpenFile(hostPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
}

// sameFile reports whether a and b describe the same file (device and inode), whichever
// way each was made (os's stat or the fast path's).
func sameFile(a, b fs.FileInfo) bool {
	x, ok1 := a.Sys().(*syscall.Stat_t)
	y, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && x.Dev == y.Dev && x.Ino == y.Ino
}
