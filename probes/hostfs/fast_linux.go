package hostfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The fast path: the kernel resolves names with openat2(RESOLVE_IN_ROOT) against a directory
// descriptor of the root held for the FS's life, instead of an lstat per path component in
// userspace (a scan of thousands of files spent most of its system calls on those). Whatever
// it cannot answer exactly as the walk would (an error whose wording names the component that
// failed, a symlink whose resolved path a caller needs, a kernel without openat2) it leaves to
// the walk, which stays the reference: both give the same answers.

// inRoot resolves like a chroot: absolute links and ".." stay inside the root. Magic links
// (/proc/<pid>/fd/N in a tree that is a live host's "/") would jump anywhere: refused.
const inRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

const openFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY

// unix.Stat_t is filled by the kernel; FileInfo.Sys must be a *syscall.Stat_t (callers read
// the owner from it). Same struct: fail the build if they ever differ in size.
var (
	_ [unsafe.Sizeof(unix.Stat_t{}) - unsafe.Sizeof(syscall.Stat_t{})]byte
	_ [unsafe.Sizeof(syscall.Stat_t{}) - unsafe.Sizeof(unix.Stat_t{})]byte
)

// rootFD is an O_PATH descriptor of the root, counted so that Close never closes it under an
// operation in flight (a probe abandoned at its deadline may still be reading): closing then
// would let the number be reused for another directory, and a resolve against it escape.
type rootFD struct {
	fd    int
	state atomic.Int64 // operations in flight, plus closedBit once Close was called
}

const closedBit = 1 << 62

// openRoot opens root for the fast path, or returns nil where openat2 is missing (kernels
// before 5.6) or refused (seccomp filters answer EPERM or ENOSYS): the walk does it all then.
func openRoot(root string) *rootFD {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	probe, err := unix.Openat2(fd, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: inRoot})
	if err != nil {
		unix.Close(fd)
		return nil
	}
	unix.Close(probe)
	return &rootFD{fd: fd}
}

// acquire returns the descriptor for one operation, or false once closed (the caller then
// takes the walk, which needs no descriptor).
func (r *rootFD) acquire() (int, bool) {
	if r == nil {
		return -1, false
	}
	for {
		s := r.state.Load()
		if s&closedBit != 0 {
			return -1, false
		}
		if r.state.CompareAndSwap(s, s+1) {
			return r.fd, true
		}
	}
}

func (r *rootFD) release() {
	if r.state.Add(-1) == closedBit {
		unix.Close(r.fd) // the last operation after Close
	}
}

func (r *rootFD) close() {
	if r.state.Or(closedBit) == 0 {
		unix.Close(r.fd) // none in flight (and not closed before)
	}
}

func openat2(dirfd int, name string, flags uint64, resolve uint64) (int, error) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolve}
	for {
		fd, err := unix.Openat2(dirfd, name, &how)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func fstatat(dirfd int, name string, st *syscall.Stat_t) error {
	for {
		err := unix.Fstatat(dirfd, name, (*unix.Stat_t)(unsafe.Pointer(st)), unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

func fstat(fd int, st *syscall.Stat_t) error {
	for {
		err := syscall.Fstat(fd, st)
		if err != syscall.EINTR {
			return err
		}
	}
}

// rel makes an in-tree name relative for openat2 (an absolute one would do as well under
// RESOLVE_IN_ROOT; relative reads plainer in traces). "" and "/" are the root itself.
func rel(name string) string {
	name = strings.TrimLeft(name, "/")
	if name == "" {
		return "."
	}
	return name
}

// cleanSplit returns the parent directory (relative, "" for the root) and last component of
// a name without "..": then the cleaned name is what the walk would resolve it to when none
// of its parents is a link. ok is false for the root itself, for names with "..", which
// the walk resolves after the links before them, and for names ending in "/" or "/." (the
// last component must then be, or lead to, a directory).
func cleanSplit(name string) (dir, base string, ok bool) {
	if last := name[strings.LastIndexByte(name, '/')+1:]; last == "" || last == "." {
		return "", "", false
	}
	var parts []string
	for c := range strings.SplitSeq(name, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", "", false
		}
		parts = append(parts, c)
	}
	if len(parts) == 0 {
		return "", "", false
	}
	return strings.Join(parts[:len(parts)-1], "/"), parts[len(parts)-1], true
}

// lastSplit returns the parent (as written, for the kernel to resolve, ".." included) and last
// component of name; ok is false when the last component is ".", ".." or missing (as after
// a trailing "/", which asks for a directory).
func lastSplit(name string) (dir, base string, ok bool) {
	i := strings.LastIndexByte(name, '/')
	dir, base = name[:i+1], name[i+1:]
	if base == "" || base == "." || base == ".." {
		return "", "", false
	}
	return rel(dir), base, true
}

// fastEntry is LstatEntry when no parent of name is a link and no component is "..": the
// kernel checks the first (RESOLVE_NO_SYMLINKS on the parent), so the resolved path is the
// cleaned name. handled is false when the walk must answer.
func (f *FS) fastEntry(name string) (e *Entry, handled bool, err error) {
	dir, base, ok := cleanSplit(name)
	if !ok {
		return nil, false, nil
	}
	rootfd, ok := f.rfd.acquire()
	if !ok {
		return nil, false, nil
	}
	defer f.rfd.release()
	dfd := rootfd
	if dir != "" {
		// RESOLVE_NO_SYMLINKS implies RESOLVE_NO_MAGICLINKS. A link among the parents is
		// ELOOP: the walk follows it and knows where it led.
		if dfd, err = openat2(rootfd, dir, unix.O_PATH|unix.O_DIRECTORY, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_SYMLINKS); err != nil {
			return nil, false, nil
		}
	}
	keep := false
	defer func() {
		if dfd != rootfd && !keep {
			unix.Close(dfd)
		}
	}()
	e, handled, err = f.lookAt(dfd, dir, base, name)
	if e != nil && dfd != rootfd { // the root's descriptor is the FS's, not the entry's
		e.dfd, keep = dfd, true
	}
	return e, handled, err
}

// lookAt is the look of fastEntry at base in the directory dfd, whose in-tree path (cleaned,
// relative, no link in it) is dir.
func (f *FS) lookAt(dfd int, dir, base, name string) (*Entry, bool, error) {
	resolved := "/" + base
	if dir != "" {
		resolved = "/" + dir + "/" + base
	}
	info := &fileInfo{name: base}
	switch err := fstatat(dfd, base, &info.sys); err {
	case nil:
		info.fill()
		return &Entry{Info: info, Resolved: resolved, f: f, name: name, dfd: -1}, true, nil
	case unix.ENOENT, unix.EACCES:
		// The walk's own error: its lstat of this last component, by host path.
		return nil, true, &os.PathError{Op: "lstat", Path: f.HostPath(resolved), Err: err}
	}
	return nil, false, nil
}

// Close gives back the entry's descriptor (or its hold on its Dir's).
func (e *Entry) Close() error {
	switch {
	case e.held != nil:
		e.held.release()
		e.held = nil
	case e.dfd >= 0:
		unix.Close(e.dfd)
	}
	e.dfd = -1
	return nil
}

// openDirFD holds the directory d names when no component of it is a link (the kernel
// checks: RESOLVE_NO_SYMLINKS) and it has no "..": then its cleaned name is its resolved path.
func (d *Dir) openDirFD() {
	pdir, base, ok := cleanSplit(d.name)
	if !ok {
		return
	}
	clean := base
	if pdir != "" {
		clean = pdir + "/" + base
	}
	rootfd, ok := d.f.rfd.acquire()
	if !ok {
		return
	}
	defer d.f.rfd.release()
	dfd, err := openat2(rootfd, clean, unix.O_PATH|unix.O_DIRECTORY, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return
	}
	d.h, d.clean = &rootFD{fd: dfd}, clean
}

// fastLstatEntry looks at base in the held directory; the entry holds a reference to the
// directory's descriptor for its read, so closing the Dir first is safe.
func (d *Dir) fastLstatEntry(base, full string) (*Entry, bool, error) {
	dfd, ok := d.h.acquire()
	if !ok {
		return nil, false, nil
	}
	e, handled, err := d.f.lookAt(dfd, d.clean, base, full)
	if e == nil {
		d.h.release()
		return nil, handled, err
	}
	e.dfd, e.held = dfd, d.h
	return e, true, nil
}

// fastRead reads a regular entry through its held parent: opened with O_NOFOLLOW relative
// to it and compared with what was looked at. A link there now, or another file, is
// ErrChanged: nothing else is ever read in its place. Not handled: no parent held.
func (e *Entry) fastRead(buf []byte, limit int64, tail bool) (data []byte, more bool, info fs.FileInfo, handled bool, err error) {
	st, ok := e.Info.Sys().(*syscall.Stat_t)
	if e.dfd < 0 || !ok || !e.Info.Mode().IsRegular() {
		return nil, false, nil, false, nil
	}
	_, base, _ := cleanSplit(e.name)
	// Looked at again before the open: a FIFO or device swapped in is never opened.
	var now syscall.Stat_t
	if err := fstatat(e.dfd, base, &now); err != nil {
		return nil, false, nil, true, &fs.PathError{Op: "open", Path: e.name, Err: fmt.Errorf("%w (%v)", ErrChanged, err)}
	}
	switch {
	case now.Mode&syscall.S_IFMT == syscall.S_IFLNK:
		return nil, false, nil, true, &fs.PathError{Op: "open", Path: e.name, Err: fmt.Errorf("%w (now a symbolic link)", ErrChanged)}
	case now.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return nil, false, nil, true, &fs.PathError{Op: "open", Path: e.name, Err: ErrNotRegular}
	}
	var fd int
	for {
		fd, err = unix.Openat(e.dfd, base, openFlags, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, false, nil, true, &fs.PathError{Op: "open", Path: e.name, Err: fmt.Errorf("%w (%v)", ErrChanged, err)}
	}
	defer unix.Close(fd)
	fi := &fileInfo{name: base}
	if err := fstat(fd, &fi.sys); err != nil {
		return nil, false, nil, true, &os.PathError{Op: "stat", Path: e.name, Err: err}
	}
	if fi.sys.Mode&syscall.S_IFMT != syscall.S_IFREG || fi.sys.Dev != st.Dev || fi.sys.Ino != st.Ino {
		return nil, false, nil, true, &fs.PathError{Op: "open", Path: e.name, Err: ErrChanged}
	}
	fi.fill()
	data, more, _, err = readRegular(fd, &fi.sys, e.f.HostPath(e.Resolved), e.name, buf, limit, tail)
	return data, more, fi, true, err
}

// fastStat is Stat by the kernel: an O_PATH open (which never opens the file itself, so a
// FIFO or device is safe) following links inside the root, then fstat.
func (f *FS) fastStat(name string) (fs.FileInfo, bool) {
	rootfd, ok := f.rfd.acquire()
	if !ok {
		return nil, false
	}
	defer f.rfd.release()
	fd, err := openat2(rootfd, rel(name), unix.O_PATH, inRoot)
	if err != nil {
		return nil, false // the walk says why, in its words (and ELOOP: a loop or a magic link)
	}
	defer unix.Close(fd)
	_, base, _ := lastSplit(name)
	if base == "" {
		base = filepath.Base(f.root)
	}
	info := &fileInfo{name: base}
	if fstat(fd, &info.sys) != nil {
		return nil, false
	}
	info.fill()
	return info, true
}

// fastReadlink reads the link name (its parents followed inside the root by the kernel).
func (f *FS) fastReadlink(name string) (string, bool) {
	dir, base, ok := lastSplit(name)
	if !ok {
		return "", false
	}
	rootfd, ok := f.rfd.acquire()
	if !ok {
		return "", false
	}
	defer f.rfd.release()
	dfd, err := openat2(rootfd, dir, unix.O_PATH|unix.O_DIRECTORY, inRoot)
	if err != nil {
		return "", false
	}
	defer unix.Close(dfd)
	for n := 256; n <= 1<<16; n *= 2 {
		buf := make([]byte, n)
		got, err := unix.Readlinkat(dfd, base, buf)
		if err == unix.EINTR {
			n /= 2
			continue
		}
		if err != nil {
			return "", false
		}
		if got < n {
			return string(buf[:got]), true
		}
	}
	return "", false
}

// fastReadDir lists the directory name refers to (links followed inside the root by the
// kernel): at most n entries in directory order (n < 0: all), as os.File.ReadDir would.
func (f *FS) fastReadDir(name string, n int) ([]fs.DirEntry, bool, error) {
	rootfd, ok := f.rfd.acquire()
	if !ok {
		return nil, false, nil
	}
	defer f.rfd.release()
	fd, err := openat2(rootfd, rel(name), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, inRoot)
	if err != nil {
		return nil, false, nil
	}
	defer unix.Close(fd)
	var out []fs.DirEntry
	buf := make([]byte, 8192)
	for n < 0 || len(out) < n {
		got, err := unix.ReadDirent(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, true, &os.PathError{Op: "readdirent", Path: f.HostPath(name), Err: err}
		}
		if got <= 0 {
			break
		}
		for b := buf[:got]; len(b) > 0 && (n < 0 || len(out) < n); {
			reclen := int(*(*uint16)(unsafe.Pointer(&b[unsafe.Offsetof(unix.Dirent{}.Reclen)])))
			if reclen == 0 || reclen > len(b) {
				break
			}
			rec := b[:reclen]
			b = b[reclen:]
			nameStart := int(unsafe.Offsetof(unix.Dirent{}.Name))
			if nameStart >= len(rec) {
				continue
			}
			nm := rec[nameStart:]
			if i := bytes.IndexByte(nm, 0); i >= 0 {
				nm = nm[:i]
			}
			if string(nm) == "." || string(nm) == ".." {
				continue
			}
			e := &dirEntry{f: f, dir: name, name: string(nm)}
			switch rec[unsafe.Offsetof(unix.Dirent{}.Type)] {
			case unix.DT_REG:
				e.typ = 0
			case unix.DT_DIR:
				e.typ = fs.ModeDir
			case unix.DT_LNK:
				e.typ = fs.ModeSymlink
			case unix.DT_FIFO:
				e.typ = fs.ModeNamedPipe
			case unix.DT_SOCK:
				e.typ = fs.ModeSocket
			case unix.DT_CHR:
				e.typ = fs.ModeDevice | fs.ModeCharDevice
			case unix.DT_BLK:
				e.typ = fs.ModeDevice
			default: // DT_UNKNOWN: some filesystems do not say; ask, as os does
				var st syscall.Stat_t
				if err := fstatat(fd, e.name, &st); err != nil {
					if err == unix.ENOENT {
						continue // gone meanwhile
					}
					return nil, true, &os.PathError{Op: "lstat", Path: f.HostPath(path.Join(name, e.name)), Err: err}
				}
				info := &fileInfo{name: e.name, sys: st}
				info.fill()
				e.typ, e.info = info.mode.Type(), info
			}
			out = append(out, e)
		}
	}
	return out, true, nil
}

// fastEachName is eachName on the fast path: one 8 KiB buffer of entries at a time.
func (f *FS) fastEachName(name string, fn func(string)) (bool, error) {
	rootfd, ok := f.rfd.acquire()
	if !ok {
		return false, nil
	}
	defer f.rfd.release()
	fd, err := openat2(rootfd, rel(name), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, inRoot)
	if err != nil {
		return false, nil // the walk says why, in its words
	}
	defer unix.Close(fd)
	buf := make([]byte, 8192)
	names := make([]string, 0, 64)
	for {
		got, err := unix.ReadDirent(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return true, &os.PathError{Op: "readdirent", Path: f.HostPath(name), Err: err}
		}
		if got <= 0 {
			return true, nil
		}
		_, _, names = unix.ParseDirent(buf[:got], -1, names[:0])
		for _, n := range names {
			fn(n)
		}
	}
}

// fastOpen opens the regular file name refers to: its parent resolved by the kernel inside
// the root, the last component looked at (not followed) before it is opened relative to
// that parent with O_NOFOLLOW|O_NONBLOCK, and the opened file compared with what was looked
// at. A link as the last component is left to the walk (which follows it inside the root).
func (f *FS) fastOpen(name string) (fd int, st *syscall.Stat_t, handled bool, err error) {
	dir, base, ok := lastSplit(name)
	if !ok {
		return -1, nil, false, nil
	}
	rootfd, ok := f.rfd.acquire()
	if !ok {
		return -1, nil, false, nil
	}
	defer f.rfd.release()
	dfd, err := openat2(rootfd, dir, unix.O_PATH|unix.O_DIRECTORY, inRoot)
	if err != nil {
		return -1, nil, false, nil
	}
	defer unix.Close(dfd)
	var before syscall.Stat_t
	if fstatat(dfd, base, &before) != nil {
		return -1, nil, false, nil
	}
	switch before.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
	case syscall.S_IFLNK:
		return -1, nil, false, nil
	default: // a FIFO, socket, device or directory is never opened
		return -1, nil, true, &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	for {
		fd, err = unix.Openat(dfd, base, openFlags, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return -1, nil, false, nil // swapped meanwhile: let the walk look again
	}
	after := new(syscall.Stat_t)
	if err := fstat(fd, after); err != nil {
		unix.Close(fd)
		return -1, nil, true, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if after.Mode&syscall.S_IFMT != syscall.S_IFREG || after.Dev != before.Dev || after.Ino != before.Ino {
		unix.Close(fd)
		return -1, nil, true, &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	return fd, after, true, nil
}

// fastOpenFile is Open on the fast path.
func (f *FS) fastOpenFile(name string) (*File, bool, error) {
	fd, st, ok, err := f.fastOpen(name)
	if !ok || err != nil {
		return nil, ok, err
	}
	_, base, _ := lastSplit(name)
	info := &fileInfo{name: base, sys: *st}
	info.fill()
	return &File{File: os.NewFile(uintptr(fd), f.HostPath(name)), Info: info}, true, nil
}

// readFD reads at most limit bytes of the open regular file fd of the given size, from off,
// with raw reads into one buffer sized from the stat (buf, when it is big enough). A read that
// returns less than asked once the stat's size is in ends it: for a regular file that is the
// end (the 0-byte read that os would make to see it costs a system call per file).
func readFD(fd int, off, size int64, buf []byte, limit int64) ([]byte, bool, error) {
	if size > limit {
		size = limit
	}
	if int64(cap(buf)) > max(size, 0) {
		buf = buf[:0]
	} else {
		buf = make([]byte, 0, max(size, 0)+1)
	}
	for int64(len(buf)) <= limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		want := int(min(int64(cap(buf)), limit+1)) - len(buf)
		var n int
		var err error
		if off > 0 {
			n, err = unix.Pread(fd, buf[len(buf):len(buf)+want], off+int64(len(buf)))
		} else {
			n, err = unix.Read(fd, buf[len(buf):len(buf)+want])
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
		if n < want && int64(len(buf)) >= size && size > 0 {
			break
		}
	}
	if int64(len(buf)) > limit {
		return buf[:limit], true, nil
	}
	return buf, false, nil
}

// fastRead is ReadFile (or, with tail, ReadTail: then more reports that the data starts
// after the file's start) with raw system calls on the fast path (os.NewFile would add an
// fcntl and a failing poller registration per file). handled is false when the walk must
// answer.
func (f *FS) fastRead(name string, limit int64, tail bool) (data []byte, more, handled bool, err error) {
	fd, st, handled, err := f.fastOpen(name)
	if !handled || err != nil {
		return nil, false, handled, err
	}
	defer unix.Close(fd)
	return readRegular(fd, st, f.HostPath(name), name, nil, limit, tail)
}

// readRegular reads the open regular file fd (of stat st) for fastRead.
func readRegular(fd int, st *syscall.Stat_t, hostPath, name string, buf []byte, limit int64, tail bool) (data []byte, more, handled bool, err error) {
	var off int64
	if tail && st.Size > limit {
		off = st.Size - limit
	}
	data, more, err = readFD(fd, off, st.Size-off, buf, limit)
	if err != nil {
		return nil, false, true, fmt.Errorf("read %s: %w", name, &os.PathError{Op: "read", Path: hostPath, Err: err})
	}
	if tail {
		more = off > 0
	}
	return data, more, true, nil
}

// fileInfo is an fs.FileInfo from a stat, as os builds it (Sys is a *syscall.Stat_t).
type fileInfo struct {
	name string
	mode fs.FileMode
	sys  syscall.Stat_t
}

func (fi *fileInfo) fill() {
	m := fs.FileMode(fi.sys.Mode & 0o777)
	switch fi.sys.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if fi.sys.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.sys.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.sys.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	fi.mode = m
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.sys.Size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.sys.Mtim.Unix()) }
func (fi *fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any           { return &fi.sys }

// dirEntry is an entry of a listing on the fast path.
type dirEntry struct {
	f         *FS
	dir, name string
	typ       fs.FileMode
	info      fs.FileInfo // when the listing had to stat it
}

func (d *dirEntry) Name() string      { return d.name }
func (d *dirEntry) IsDir() bool       { return d.typ.IsDir() }
func (d *dirEntry) Type() fs.FileMode { return d.typ }
func (d *dirEntry) String() string    { return fs.FormatDirEntry(d) }

// Info describes the entry itself (a link is not followed), looked up inside the tree.
func (d *dirEntry) Info() (fs.FileInfo, error) {
	if d.info != nil {
		return d.info, nil
	}
	// Not path.Join: it would take a ".." in the listed name lexically, where the listing
	// took it after the links before it.
	return d.f.Lstat(strings.TrimSuffix(d.dir, "/") + "/" + d.name)
}
