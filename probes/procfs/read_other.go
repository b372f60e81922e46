//go:build !linux

package procfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// readFile reads at most limit bytes of a regular file and says whether there was more.
func readFile(name string, limit int64, _ []byte, _, kernel bool) ([]byte, bool, error) {
	f, err := openFile(name, kernel)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return data[:limit], true, nil
	}
	return data, false, nil
}

// openFile opens name when it is a regular file, looked at before it is opened (a device
// node is never opened) and compared with what was opened.
func openFile(name string, _ bool) (*os.File, error) {
	before, err := os.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	f, err := os.OpenFile(name, os.O_RDONLY|noFollowNonblock, 0)
	if err != nil {
		return nil, err
	}
	after, err := f.Stat()
	if err != nil || !after.Mode().IsRegular() || !os.SameFile(before, after) {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	return f, nil
}

// isProcfs: elsewhere there is no procfs to skip checks for.
func isProcfs(string) bool { return false }

// readDirNames lists at most n names of a directory.
func readDirNames(dir string, n int) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(n)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return names, err
}

// socketInodes returns the socket inodes among a process's open files.
func (p FS) socketInodes(pid int) ([]uint64, error) {
	dir := p.Path(pid, "fd")
	names, err := readDirNames(dir, maxFDsPerPID)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, n := range names {
		t, err := os.Readlink(filepath.Join(dir, n))
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := SocketInode(t); ok {
			out = append(out, ino)
		}
	}
	return out, nil
}

// fdReadable says whether the process's fd directory can be listed, without listing it.
func (p FS) fdReadable(pid int) error {
	d, err := os.Open(p.Path(pid, "fd"))
	if err != nil {
		return err
	}
	return d.Close()
}
