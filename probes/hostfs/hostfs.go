// Package hostfs reads a host's files under a root directory as if chrooted there: absolute
// symlinks resolve inside the root, ".." stops at the root, and nothing outside the root is
// ever opened. Only regular files are opened (never a FIFO, socket or device), without
// blocking, and never more than a caller-given number of bytes.
package hostfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
)

// maxLinks bounds symlink resolution, as the kernel's ELOOP does.
const maxLinks = 40

// ErrNotRegular is returned when asked to read something that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooManyLinks is returned for symlink loops and chains longer than 40 links.
var ErrTooManyLinks = errors.New("too many levels of symbolic links")

// ErrChanged is returned when what an Entry looked at is no longer what its name leads to
// when it is read (replaced, swapped for a link, removed): nothing is read then.
var ErrChanged = errors.New("replaced between the look and the read; not read")

// FS is a host tree. The zero value is not usable; call New. It is safe for concurrent use.
type FS struct {
	root string  // absolute, cleaned host path of the tree's "/"
	rfd  *rootFD // the root held open for the kernel to resolve names in (Linux); nil: the walk
}

// New returns the tree rooted at root, which must be an existing directory. On Linux it holds
// a descriptor of the root (the kernel resolves names inside it, openat2 RESOLVE_IN_ROOT):
// Close it when done.
func New(root string) (*FS, error) { return newFS(root, true) }

// NewPortable is New resolving every name with the userspace walk, as on kernels without
// openat2 and on other systems: for tests that hold both ways to the same answers.
func NewPortable(root string) (*FS, error) { return newFS(root, false) }

func newFS(root string, kernel bool) (*FS, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("root %s: not a directory", root)
	}
	f := &FS{root: abs}
	if kernel {
		if r := openRoot(abs); r != nil {
			f.rfd = r
			// An FS nobody closed still gives its descriptor back, once unreachable (no
			// operation can then be in flight).
			runtime.AddCleanup(f, (*rootFD).close, r)
		}
	}
	return f, nil
}

// Close gives back the root's descriptor. Operations in flight finish first; later ones take
// the userspace walk, so an FS is never unusable. Closing twice is harmless.
func (f *FS) Close() error {
	if f.rfd != nil {
		f.rfd.close()
	}
	return nil
}

// Root returns the host path of the tree's root.
func (f *FS) Root() string { return f.root }

// HostPath returns where name (a path inside the tree) lies on the host, without resolving
// any symlink. Use it for messages and for tools that need a host path; read through FS.
func (f *FS) HostPath(name string) string {
	return filepath.Join(f.root, filepath.FromSlash(path.Clean("/"+name)))
}

// resolve walks name inside the tree, following symlinks as a chroot would, and returns the
// cleaned in-tree path it ends at. followLast says whether a symlink as the last component is
// followed. A missing component is an error wrapping fs.ErrNotExist.
func (f *FS) resolve(name string, followLast bool) (string, error) {
	p, _, err := f.resolveInfo(name, followLast)
	return p, err
}

// resolveInfo is resolve, also returning the Lstat of the path it resolved to (nil for the
// root itself): the walk has just looked at it, so callers need not stat it again.
func (f *FS) resolveInfo(name string, followLast bool) (string, fs.FileInfo, error) {
	rest := split(name)
	var cur []string
	var last fs.FileInfo
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			last = nil // the parent: stat it again if asked
			continue
		}
		next := append(slices.Clip(cur), c)
		hp := filepath.Join(f.root, filepath.Join(next...))
		fi, err := os.Lstat(hp)
		if err != nil {
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 && (len(rest) > 0 || followLast) {
			if links++; links > maxLinks {
				return "", nil, &fs.PathError{Op: "resolve", Path: name, Err: ErrTooManyLinks}
			}
			target, err := os.Readlink(hp)
			if err != nil {
				return "", nil, err
			}
			if path.IsAbs(filepath.ToSlash(target)) || filepath.IsAbs(target) {
				cur = nil
			}
			rest = append(split(target), rest...)
			last = nil
			continue
		}
		if len(rest) > 0 && !fi.IsDir() {
			return "", nil, &fs.PathError{Op: "resolve", Path: name, Err: fs.ErrNotExist}
		}
		cur, last = next, fi
	}
	return "/" + strings.Join(cur, "/"), last, nil
}

func split(p string) []string {
	return strings.Split(filepath.ToSlash(p), "/")
}

// Resolve returns the in-tree path that name refers to after following symlinks.
func (f *FS) Resolve(name string) (string, error) {
	return f.resolve(name, true)
}

// Lstat describes name itself (a symlink is not followed; its parents are).
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	fi, _, err := f.LstatResolve(name)
	return fi, err
}

// LstatResolve is Lstat, also returning the in-tree path name refers to with its parents'
// links resolved (its own, if it is one, not followed): one walk for both.
func (f *FS) LstatResolve(name string) (fs.FileInfo, string, error) {
	if e, ok, err := f.fastEntry(name); ok {
		if err != nil {
			return nil, "", err
		}
		e.Close()
		return e.Info, e.Resolved, nil
	}
	return f.walkLstatResolve(name)
}

func (f *FS) walkLstatResolve(name string) (fs.FileInfo, string, error) {
	p, fi, err := f.resolveInfo(name, false)
	if err != nil {
		return nil, "", err
	}
	if fi == nil {
		if fi, err = os.Lstat(f.HostPath(p)); err != nil {
			return nil, "", err
		}
	}
	return fi, p, nil
}

// Entry is a name looked at as LstatResolve does, kept ready for reading: a read right after
// the look needs no second resolution when the name still leads to what was looked at.
// Close it when done.
type Entry struct {
	Info     fs.FileInfo // the name itself (a link is not followed)
	Resolved string      // its in-tree path, parents' links resolved

	f    *FS
	name string
	dfd  int     // the parent directory, held open (Linux); -1: none
	held *rootFD // when dfd is a Dir's: the hold on it, released by Close
}

// Dir is a directory of the tree held for looking at several of its entries in turn (the
// files of one home): on Linux the kernel resolves it once, not once per entry. Close it;
// entries taken from it stay readable after.
type Dir struct {
	f     *FS
	name  string
	clean string  // its in-tree path (relative, no link in it) when held
	h     *rootFD // the held directory; nil: each entry is looked up from the root
}

// OpenDir returns the directory name for LstatEntry calls. It never fails: a directory that
// cannot be held (missing, a link among its components, no openat2) has each entry looked
// up from the root, with the errors that gives.
func (f *FS) OpenDir(name string) *Dir {
	d := &Dir{f: f, name: name}
	if d.openDirFD(); d.h != nil {
		runtime.AddCleanup(d, (*rootFD).close, d.h) // one nobody closed
	}
	return d
}

// LstatEntry is FS.LstatEntry of the name base (one component) in the directory.
func (d *Dir) LstatEntry(base string) (*Entry, error) {
	full := strings.TrimSuffix(d.name, "/") + "/" + base
	if d.h != nil && base != "" && base != "." && base != ".." && !strings.Contains(base, "/") {
		if e, ok, err := d.fastLstatEntry(base, full); ok {
			return e, err
		}
	}
	return d.f.LstatEntry(full)
}

// Close gives back the directory's descriptor once no entry taken from it needs it.
func (d *Dir) Close() error {
	if d.h != nil {
		d.h.close()
	}
	return nil
}

// LstatEntry is LstatResolve, keeping the result ready for ReadFile or ReadTail.
func (f *FS) LstatEntry(name string) (*Entry, error) {
	if e, ok, err := f.fastEntry(name); ok {
		return e, err
	}
	fi, p, err := f.walkLstatResolve(name)
	if err != nil {
		return nil, err
	}
	return &Entry{Info: fi, Resolved: p, f: f, name: name, dfd: -1}, nil
}

// ReadFile is FS.ReadFile of what the entry looked at (see ReadInto).
func (e *Entry) ReadFile(limit int64) (data []byte, truncated bool, err error) {
	data, truncated, _, err = e.ReadInto(nil, limit, false)
	return data, truncated, err
}

// ReadTail is FS.ReadTail of what the entry looked at (see ReadInto).
func (e *Entry) ReadTail(limit int64) (data []byte, cut bool, err error) {
	data, cut, _, err = e.ReadInto(nil, limit, true)
	return data, cut, err
}

// ReadInto reads at most limit bytes (with tail, the last ones) of what the entry looked at,
// into buf when it is big enough (for a caller reading many files one after another: data
// then shares buf's memory). info is the fstat of the file read, on which a caller decides
// owner and type.
//
// What is read is what was looked at, never another file: a regular entry is opened without
// following a link and must be the same file (device and inode) as the look found, or the
// read fails with ErrChanged (a user swapping a file for a link to another user's, in a
// loop, gets nothing read). A link entry is followed inside the root, as Open does; the
// caller judges the file by info. Anything else is ErrNotRegular, never opened.
func (e *Entry) ReadInto(buf []byte, limit int64, tail bool) (data []byte, more bool, info fs.FileInfo, err error) {
	mode := e.Info.Mode()
	switch {
	case mode.IsRegular():
		if data, more, info, ok, err := e.fastRead(buf, limit, tail); ok {
			return data, more, info, err
		}
		file, err := e.f.openSame(e.Resolved, e.Info)
		if err != nil {
			return nil, false, nil, err
		}
		defer file.Close()
		data, more, err = file.readInto(buf, limit, tail)
		return data, more, file.Info, err
	case mode&fs.ModeSymlink != 0:
		file, err := e.f.Open(e.name)
		if err != nil {
			return nil, false, nil, err
		}
		defer file.Close()
		data, more, err = file.readInto(buf, limit, tail)
		return data, more, file.Info, err
	default:
		return nil, false, nil, &fs.PathError{Op: "open", Path: e.name, Err: ErrNotRegular}
	}
}

// openSame opens the in-tree path p (its parents' links resolved, its own not followed) when
// it is still the file want describes.
func (f *FS) openSame(p string, want fs.FileInfo) (*File, error) {
	// Looked at again before the open: a FIFO or device swapped in is never opened.
	if now, err := os.Lstat(f.HostPath(p)); err == nil && now.Mode()&fs.ModeSymlink == 0 && !now.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: p, Err: ErrNotRegular}
	}
	file, err := f.openNoFollow(p)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fmt.Errorf("%w (%v)", ErrChanged, err)}
	}
	after, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	if !after.Mode().IsRegular() || !sameFile(want, after) {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: p, Err: ErrChanged}
	}
	return &File{File: file, Info: after}, nil
}

// readInto reads at most limit bytes of the open file (with tail, its last ones), into buf
// when it is big enough. more reports bytes left out (after, or with tail before, the data).
func (file *File) readInto(buf []byte, limit int64, tail bool) ([]byte, bool, error) {
	size := file.Info.Size()
	var off int64
	if tail && size > limit {
		off = size - limit
	}
	want := min(max(size-off, 0), limit) + 1
	if int64(cap(buf)) >= want {
		buf = buf[:0]
	} else {
		buf = make([]byte, 0, want)
	}
	for int64(len(buf)) <= limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := file.ReadAt(buf[len(buf):min(int64(cap(buf)), limit+1)], off+int64(len(buf)))
		buf = buf[:len(buf)+n]
		if err == io.EOF || (n == 0 && err == nil) {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", file.Name(), err)
		}
	}
	if int64(len(buf)) > limit {
		return buf[:limit], !tail, nil
	}
	return buf, tail && off > 0, nil
}

// Stat describes what name refers to, following symlinks inside the tree.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	if fi, ok := f.fastStat(name); ok {
		return fi, nil
	}
	p, fi, err := f.resolveInfo(name, true)
	if err != nil || fi != nil {
		return fi, err
	}
	return os.Lstat(f.HostPath(p))
}

// Readlink returns the target of the symlink name, as written in the link.
func (f *FS) Readlink(name string) (string, error) {
	if t, ok := f.fastReadlink(name); ok {
		return t, nil
	}
	p, err := f.resolve(name, false)
	if err != nil {
		return "", err
	}
	return os.Readlink(f.HostPath(p))
}

// ReadDir lists the directory name refers to, sorted by name, at most limit entries
// (limit <= 0 means all). truncated reports that more entries were left out.
func (f *FS) ReadDir(name string, limit int) (entries []fs.DirEntry, truncated bool, err error) {
	n := -1
	if limit > 0 {
		n = limit + 1
	}
	entries, ok, err := f.fastReadDir(name, n)
	if !ok {
		p, fi, rerr := f.resolveInfo(name, true)
		if rerr != nil {
			return nil, false, rerr
		}
		if fi != nil && !fi.IsDir() {
			// Never opened: a FIFO would block the open.
			return nil, false, fmt.Errorf("read dir %s: %w", name, &fs.PathError{Op: "readdirent", Path: f.HostPath(p), Err: syscall.ENOTDIR})
		}
		d, oerr := openDir(f.HostPath(p))
		if oerr != nil {
			return nil, false, oerr
		}
		defer d.Close()
		entries, err = d.ReadDir(n)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("read dir %s: %w", name, err)
	}
	if limit > 0 && len(entries) > limit {
		entries, truncated = entries[:limit], true
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, truncated, nil
}

// Glob returns the in-tree paths matching pattern (path.Match syntax per component), sorted.
// Directories are followed through symlinks inside the tree. At most limit matches
// (limit <= 0 means all): GlobN also says whether some were left out.
func (f *FS) Glob(pattern string, limit int) ([]string, error) {
	m, _, err := f.GlobN(pattern, limit)
	return m, err
}

// GlobN is Glob, also reporting that more than limit paths matched (the first limit, by
// name, are returned). A component with a metacharacter is matched against its directory's
// entries read in batches, keeping at most limit names, so a directory of a million entries
// costs a few kilobytes, not hundreds of megabytes; one without is looked up as it is. A
// name found on disk and put into a pattern must be escaped with QuoteMeta: its "[" or "*"
// would be taken for a pattern.
func (f *FS) GlobN(pattern string, limit int) (matches []string, truncated bool, err error) {
	parts := split(path.Clean("/" + pattern))[1:]
	if len(parts) == 0 || (len(parts) == 1 && parts[0] == "") {
		return nil, false, nil
	}
	matches = []string{"/"}
	for _, part := range parts {
		var next []string
		lit, isLit := literal(part)
		for _, dir := range matches {
			if isLit {
				p := path.Join(dir, lit)
				if _, err := f.Lstat(p); err == nil {
					next = append(next, p)
				}
				continue
			}
			kept := &smallest{limit: limit}
			if err := f.eachName(dir, func(name string) {
				if ok, _ := path.Match(part, name); ok {
					kept.add(name)
				}
			}); err != nil {
				continue // not a directory, unreadable or gone: no matches below it
			}
			truncated = truncated || kept.dropped
			for _, name := range kept.sorted() {
				next = append(next, path.Join(dir, name))
			}
		}
		matches = next
		if limit > 0 && len(matches) > limit {
			slices.Sort(matches)
			matches, truncated = matches[:limit], true
		}
	}
	slices.Sort(matches)
	return matches, truncated, nil
}

// QuoteMeta escapes the metacharacters of a name, so that Glob takes it as written
// (cloud-init's instance directory i-0abc[1] is a name, not a pattern).
func QuoteMeta(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ { // bytes: a name need not be UTF-8
		if strings.IndexByte(`*?[\`, name[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(name[i])
	}
	return b.String()
}

// literal returns the name a pattern component stands for when it matches only that name
// (no metacharacter, or only escaped ones).
func literal(part string) (string, bool) {
	if !hasMeta(part) {
		return part, true
	}
	var b strings.Builder
	for i := 0; i < len(part); i++ {
		switch c := part[i]; c {
		case '*', '?', '[':
			return "", false
		case '\\':
			if i+1 == len(part) {
				return "", false
			}
			i++
			b.WriteByte(part[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// smallest keeps the limit smallest names added (all when limit <= 0): a max-heap.
type smallest struct {
	limit   int
	names   []string
	dropped bool
}

func (s *smallest) add(name string) {
	if s.limit <= 0 || len(s.names) < s.limit {
		s.names = append(s.names, name)
		for i := len(s.names) - 1; i > 0; { // sift up
			p := (i - 1) / 2
			if s.names[p] >= s.names[i] {
				break
			}
			s.names[p], s.names[i] = s.names[i], s.names[p]
			i = p
		}
		return
	}
	s.dropped = true
	if name >= s.names[0] {
		return
	}
	s.names[0] = name
	for i := 0; ; { // sift down
		l, r, big := 2*i+1, 2*i+2, i
		if l < len(s.names) && s.names[l] > s.names[big] {
			big = l
		}
		if r < len(s.names) && s.names[r] > s.names[big] {
			big = r
		}
		if big == i {
			break
		}
		s.names[i], s.names[big] = s.names[big], s.names[i]
		i = big
	}
}

func (s *smallest) sorted() []string {
	slices.Sort(s.names)
	return s.names
}

// eachName calls fn with each entry name of the directory name refers to (links followed
// inside the tree), reading it in batches: memory does not grow with the directory.
func (f *FS) eachName(name string, fn func(string)) error {
	if ok, err := f.fastEachName(name, fn); ok {
		return err
	}
	p, fi, err := f.resolveInfo(name, true)
	if err != nil {
		return err
	}
	if fi != nil && !fi.IsDir() {
		return &fs.PathError{Op: "readdirent", Path: f.HostPath(p), Err: syscall.ENOTDIR}
	}
	d, err := openDir(f.HostPath(p))
	if err != nil {
		return err
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, n := range names {
			fn(n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read dir %s: %w", name, err)
		}
	}
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// File is an open regular file of the tree.
type File struct {
	*os.File
	Info fs.FileInfo // from fstat after opening
}

// Open opens the regular file name refers to for reading. Symlinks are followed inside the
// tree only; anything but a regular file is refused with ErrNotRegular before it is opened,
// and checked again after (O_NONBLOCK, so a FIFO swapped in meanwhile cannot block).
func (f *FS) Open(name string) (*File, error) {
	if file, ok, err := f.fastOpenFile(name); ok {
		return file, err
	}
	p, before, err := f.resolveInfo(name, true)
	if err != nil {
		return nil, err
	}
	if before == nil {
		if before, err = os.Lstat(f.HostPath(p)); err != nil {
			return nil, err
		}
	}
	if !before.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	file, err := f.openNoFollow(p)
	if err != nil {
		return nil, err
	}
	after, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	if !after.Mode().IsRegular() || !os.SameFile(before, after) {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	return &File{File: file, Info: after}, nil
}

// ReadFile reads at most limit bytes of the regular file name refers to. truncated reports
// that the file was longer.
func (f *FS) ReadFile(name string, limit int64) (data []byte, truncated bool, err error) {
	if data, truncated, ok, err := f.fastRead(name, limit, false); ok {
		return data, truncated, err
	}
	file, err := f.Open(name)
	if err != nil {
		return nil, false, err
	}
	defer file.Close()
	size := file.Info.Size()
	if size > limit {
		size = limit
	}
	buf := make([]byte, 0, size+1)
	buf, err = readAll(io.LimitReader(file, limit+1), buf)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(buf)) > limit {
		return buf[:limit], true, nil
	}
	return buf, false, nil
}

// ReadTail reads at most limit bytes of the regular file name refers to, its last ones when
// it is longer (logs and shell histories grow at the end, where the recent lines are). cut
// reports that the data starts after the file's start.
func (f *FS) ReadTail(name string, limit int64) (data []byte, cut bool, err error) {
	if data, cut, ok, err := f.fastRead(name, limit, true); ok {
		return data, cut, err
	}
	file, err := f.Open(name)
	if err != nil {
		return nil, false, err
	}
	defer file.Close()
	size := file.Info.Size()
	if size > limit {
		if _, err := file.Seek(size-limit, io.SeekStart); err != nil {
			return nil, false, fmt.Errorf("seek %s: %w", name, err)
		}
	}
	b := make([]byte, 0, min(max(size, 0), limit)+1)
	for int64(len(b)) < limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := file.Read(b[len(b):min(int64(cap(b)), limit)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", name, err)
		}
	}
	return b, size > limit, nil
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}
