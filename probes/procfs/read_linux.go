package procfs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// readFile reads at most limit bytes (and says whether there was more) with raw system calls:
// open, fstat, read until EOF, close. os.OpenFile would add an fcntl and a failing epoll
// registration per file, and io.ReadAll's 512-byte start a read per doubling; with thousands
// of processes those were most of a scan's system calls.
//
// With shortIsEOF a read returning less than asked ends it: true of files the kernel fills
// in one go (comm; environ, which it copies until the request or the environment ends), and
// it saves the extra read that would return 0.
func readFile(name string, limit int64, buf []byte, shortIsEOF bool) ([]byte, bool, error) {
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, false, &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, false, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, false, fmt.Errorf("%s: not a regular file", name)
	}
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

// readDirNames lists at most n names of a directory with raw system calls (os.Open of a
// directory costs fcntl calls and a poller registration attempt; sshd's probe lists the fd
// directory of every process).
func readDirNames(dir string, n int) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
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
