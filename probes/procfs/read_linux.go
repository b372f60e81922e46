package procfs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// readFile reads at most limit bytes (and says whether there was more) with raw system calls:
// open, read until EOF, close. os.OpenFile would add an fcntl and a failing epoll
// registration per file, and io.ReadAll's 512-byte start a read per doubling; with thousands
// of processes those were most of a scan's system calls.
//
// With shortIsEOF a read returning less than asked ends it: true of files the kernel fills
// in one go (comm; environ, which it copies until the request or the environment ends), and
// it saves the extra read that would return 0.
//
// The size a stat would give is useless (procfs says 0), so there is none before reading.
// In a mounted procfs (kernel) every file is a regular one. Elsewhere (a fixture tree, a
// --proc given by hand) the file's type is looked at before it is opened, and the opened
// file is checked to be what was looked at: a FIFO, socket or device node is never opened
// (opening a device runs its driver, whatever the flags).
func readFile(name string, limit int64, buf []byte, shortIsEOF, kernel bool) ([]byte, bool, error) {
	fd, err := openRegular(name, kernel)
	if err != nil {
		return nil, false, err
	}
	defer unix.Close(fd)
	// procfs reports size 0; start at a page, enough for most status and environ files
	// (or at what the caller's buffer already holds).
	if buf = buf[:0]; cap(buf) == 0 {
		buf = make([]byte, 0, min(limit+1, 4096))
	}
	for int64(len(buf)) <= limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		want := int(min(int64(cap(buf)), limit+1)) - len(buf)
		n, err := unix.Read(fd, buf[len(buf):len(buf)+want])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false, &os.PathError{Op: "read", Path: name, Err: err}
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
		if shortIsEOF && n < want {
			break
		}
	}
	if int64(len(buf)) > limit {
		return buf[:limit], true, nil
	}
	return buf, false, nil
}

// openRegular opens name read-only, without following a link as its last component and
// without blocking. Outside a mounted procfs (kernel false) only a regular file is opened:
// lstat first, then fstat of the opened file compared with it (a swap in between is
// refused).
func openRegular(name string, kernel bool) (int, error) {
	var before unix.Stat_t
	if !kernel {
		if err := unix.Lstat(name, &before); err != nil {
			return -1, &os.PathError{Op: "lstat", Path: name, Err: err}
		}
		if before.Mode&unix.S_IFMT != unix.S_IFREG {
			return -1, fmt.Errorf("%s: not a regular file", name)
		}
	}
	var fd int
	var err error
	for {
		fd, err = unix.Open(name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: name, Err: err}
	}
	if kernel {
		return fd, nil
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if after.Mode&unix.S_IFMT != unix.S_IFREG || after.Dev != before.Dev || after.Ino != before.Ino {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: not a regular file (replaced while it was opened)", name)
	}
	return fd, nil
}

// openFile is openRegular as an *os.File, for readers that want one.
func openFile(name string, kernel bool) (*os.File, error) {
	fd, err := openRegular(name, kernel)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// isProcfs says whether dir is a mounted procfs.
func isProcfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && uint32(st.Type) == unix.PROC_SUPER_MAGIC
}

// readDirFD lists at most n names of the open directory fd with raw system calls (os.Open
// of a directory costs fcntl calls and a poller registration attempt). It reads until the
// directory says it has no more: a read that leaves room in the buffer is not the last, as a
// signal (Go preempts goroutines with one) ends a directory read after its first entry.
func readDirFD(fd int, dir string, n int) ([]string, error) {
	var names []string
	buf := make([]byte, 8192)
	for len(names) < n {
		got, err := unix.ReadDirent(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return names, &os.PathError{Op: "readdirent", Path: dir, Err: err}
		}
		if got <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:got], n-len(names), names)
	}
	return names, nil
}

// socketInodes returns the socket inodes among a process's open files: its fd directory
// listed and each link read relative to it, with raw system calls.
func (p FS) socketInodes(pid int) ([]uint64, error) {
	dir := p.Path(pid, "fd")
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	names, err := readDirFD(fd, dir, maxFDsPerPID)
	if err != nil {
		return nil, err
	}
	var out []uint64
	buf := make([]byte, 64) // "socket:[N]" fits; longer targets are no sockets
	for _, name := range names {
		n, err := unix.Readlinkat(fd, name, buf)
		if err == unix.EINTR {
			n, err = unix.Readlinkat(fd, name, buf)
		}
		if err != nil || n >= len(buf) {
			continue // closed meanwhile, or not a socket
		}
		if ino, ok := SocketInode(string(buf[:n])); ok {
			out = append(out, ino)
		}
	}
	return out, nil
}

// fdReadable says whether the process's fd directory can be listed, without listing it.
func (p FS) fdReadable(pid int) error {
	dir := p.Path(pid, "fd")
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	unix.Close(fd)
	return nil
}
