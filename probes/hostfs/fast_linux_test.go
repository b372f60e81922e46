package hostfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// equivTree is tree plus what the fast path treats specially: a link among a file's parents
// (a home's .aws linked into another home), "..", a file used as a directory, a FIFO, a
// magic-looking absolute link, a link to a directory, a dangling link.
func equivTree(t *testing.T) string {
	root, _ := tree(t)
	for _, d := range []string{"home/v/.aws", "home/w", "etc/d/sub"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "home/v/.aws/credentials"), []byte("[default]\n"), 0o600)
	os.WriteFile(filepath.Join(root, "etc/d/sub/f"), []byte("deep"), 0o640)
	os.WriteFile(filepath.Join(root, "etc/plain"), []byte("plain"), 0o644)
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	link("/home/v/.aws", "home/w/.aws")
	link("../etc/d", "home/w/d")
	link("/nowhere", "home/w/dangling")
	link("/proc/self/root", "home/w/magic")
	if err := syscall.Mkfifo(filepath.Join(root, "etc/fifo"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return root
}

var equivNames = []string{
	"/", "", ".", "/etc", "/etc/", "etc/plain", "//etc//plain", "/etc/./plain", "/etc/plain/",
	"/etc/d/sub/f", "/etc/d/../plain", "/../etc/plain", "/etc/../../etc/plain", "/etc/nope",
	"/etc/plain/x", "/nope/x", "/etc/fifo", "/secret", "/home/u/.aws/credentials",
	"/home/u/abs-out", "/home/u/rel-out", "/home/u/zero", "/loop/a", "/loop/a/x",
	"/var/lib/cloud/instance", "/var/lib/cloud/instance/", "/var/lib/cloud/instance/user-data.txt",
	"/home/w/.aws/credentials", "/home/w/.aws", "/home/w/d/sub/f", "/home/w/d/sub/../../plain",
	"/home/w/dangling", "/home/w/dangling/x", "/home/w/magic", "/home/w/magic/etc/passwd",
	"/home/v/.aws/credentials", "/home/w/d/../d/sub/f", "/home/w/d/..", "/home/w/d/sub/..",
}

func describeInfo(fi fs.FileInfo, err error) string {
	if err != nil {
		return "err " + err.Error()
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%v %d %v ino=%d uid=%d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), st.Ino, st.Uid)
}

// TestKernelMatchesWalk: for every method and every name, the kernel's resolution gives what
// the userspace walk gives: the same data, metadata, resolved paths and error texts.
func TestKernelMatchesWalk(t *testing.T) {
	root := equivTree(t)
	fast, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	if fast.rfd == nil {
		t.Skip("no openat2 here: the walk is all there is")
	}
	walk, _ := NewPortable(root)
	calls := map[string]func(f *FS, name string) string{
		"Lstat": func(f *FS, name string) string { return describeInfo(f.Lstat(name)) },
		"LstatResolve": func(f *FS, name string) string {
			fi, p, err := f.LstatResolve(name)
			return describeInfo(fi, err) + " " + p
		},
		"Stat": func(f *FS, name string) string { return describeInfo(f.Stat(name)) },
		"LstatEntry": func(f *FS, name string) string {
			e, err := f.LstatEntry(name)
			if err != nil {
				return err.Error()
			}
			defer e.Close()
			b, tr, err := e.ReadFile(4)
			tail, cut, terr := e.ReadTail(3)
			return fmt.Sprint(describeInfo(e.Info, nil), e.Resolved, string(b), tr, err, string(tail), cut, terr)
		},
		"Readlink": func(f *FS, name string) string {
			s, err := f.Readlink(name)
			return fmt.Sprint(s, err)
		},
		"ReadFile": func(f *FS, name string) string {
			b, tr, err := f.ReadFile(name, 3)
			return fmt.Sprint(string(b), tr, err)
		},
		"ReadTail": func(f *FS, name string) string {
			b, cut, err := f.ReadTail(name, 3)
			return fmt.Sprint(string(b), cut, err)
		},
		"Open": func(f *FS, name string) string {
			file, err := f.Open(name)
			if err != nil {
				return err.Error()
			}
			defer file.Close()
			b := make([]byte, 64)
			n, _ := file.Read(b)
			return string(b[:n]) + " " + describeInfo(file.Info, nil)
		},
		"ReadDir": func(f *FS, name string) string {
			es, tr, err := f.ReadDir(name, 2)
			var b strings.Builder
			for _, e := range es {
				fi, ierr := e.Info()
				fmt.Fprintf(&b, "%s %v %v %s; ", e.Name(), e.Type(), e.IsDir(), describeInfo(fi, ierr))
			}
			return fmt.Sprint(b.String(), tr, err)
		},
		"Glob": func(f *FS, name string) string {
			m, err := f.Glob(name+"/*", 0)
			return fmt.Sprint(m, err)
		},
	}
	for method, call := range calls {
		for _, name := range equivNames {
			if got, want := call(fast, name), call(walk, name); got != want {
				t.Errorf("%s(%q):\nkernel %s\nwalk   %s", method, name, got, want)
			}
		}
	}
}

// TestCloseWaitsForOperations: Close with reads in flight never closes the root under them
// (the descriptor number could be reused), the FS stays usable after it (by the walk), and
// the descriptor is given back.
func TestCloseWaitsForOperations(t *testing.T) {
	root, _ := tree(t)
	before := countFDs(t)
	f, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if f.rfd == nil {
		t.Skip("no openat2 here")
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if b, _, err := f.ReadFile("/home/u/.aws/credentials", 100); err != nil || string(b) != "INSIDE" {
					t.Errorf("read during Close: %q %v", b, err)
					return
				}
			}
		})
	}
	f.Close()
	wg.Wait()
	f.Close()
	if b, _, err := f.ReadFile("/var/lib/cloud/instance/user-data.txt", 100); err != nil || string(b) != "#!/bin/sh\n" {
		t.Errorf("read after Close: %q %v", b, err)
	}
	if after := countFDs(t); after != before {
		t.Errorf("open descriptors %d before New, %d after Close", before, after)
	}
}

func countFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(es)
}

// TestEntrySwapped: what an entry reads is what LstatEntry looked at, or nothing: a file
// replaced between the look and the read, or swapped for a link (to another user's file,
// in the root), is ErrChanged and not read; a FIFO swapped in is refused, not opened.
func TestEntrySwapped(t *testing.T) {
	bothWays(t, func(t *testing.T, mk func(string) (*FS, error)) {
		root, _ := tree(t)
		f, err := mk(root)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, "etc", "swap")
		os.WriteFile(p, []byte("old"), 0o644)
		os.WriteFile(filepath.Join(root, "etc", "secret"), []byte("ROOTKEY"), 0o600)
		before := countFDs(t)
		e, err := f.LstatEntry("/etc/swap")
		if err != nil {
			t.Fatal(err)
		}
		if b, _, info, err := e.ReadInto(nil, 10, false); err != nil || string(b) != "old" || !sameFile(info, e.Info) {
			t.Errorf("unchanged file: %q %v", b, err)
		}
		os.WriteFile(p+".new", []byte("new"), 0o644) // another inode: both exist at once
		os.Rename(p+".new", p)
		if b, _, err := e.ReadFile(10); !errors.Is(err, ErrChanged) || len(b) > 0 {
			t.Errorf("replaced file: %q %v, want ErrChanged", b, err)
		}
		os.Remove(p)
		os.Symlink("secret", p)
		if b, _, err := e.ReadFile(10); !errors.Is(err, ErrChanged) || len(b) > 0 {
			t.Errorf("swapped for a link: %q %v, want ErrChanged", b, err)
		}
		if b, _, err := e.ReadTail(10); !errors.Is(err, ErrChanged) || len(b) > 0 {
			t.Errorf("swapped for a link, tail: %q %v, want ErrChanged", b, err)
		}
		os.Remove(p)
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skip(err)
		}
		if _, _, err := e.ReadFile(10); !errors.Is(err, ErrNotRegular) {
			t.Errorf("FIFO swapped in: err %v, want ErrNotRegular", err)
		}
		if _, _, err := e.ReadTail(10); !errors.Is(err, ErrNotRegular) {
			t.Errorf("FIFO swapped in, tail: err %v, want ErrNotRegular", err)
		}
		e.Close()
		if after := countFDs(t); after != before {
			t.Errorf("descriptors %d before LstatEntry, %d after Close", before, after)
		}
	})
}

// TestDirMatchesWalk: an entry looked at through a held Dir is what FS.LstatEntry of the
// joined name gives by the walk, read included; closing the Dir before reading is safe.
func TestDirMatchesWalk(t *testing.T) {
	root := equivTree(t)
	fast, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	walk, _ := NewPortable(root)
	before := countFDs(t)
	describe := func(e *Entry, err error) string {
		if err != nil {
			return err.Error()
		}
		defer e.Close()
		b, tr, err := e.ReadFile(4)
		return fmt.Sprint(describeInfo(e.Info, nil), e.Resolved, string(b), tr, err)
	}
	dirs := []string{"/", "/etc", "/etc/", "/home/w", "/home/w/.aws", "/home/u/.aws", "/home/v/.aws", "/nope", "/etc/plain", "/home/w/d/..", "/home/w/d/sub", "/loop"}
	bases := []string{"plain", "credentials", "config", ".aws", "d", "x", "fifo", "sub", "f", "a", "..", ".", "", "d/sub"}
	for _, dir := range dirs {
		d := fast.OpenDir(dir)
		if held := slices.Contains([]string{"/etc", "/home/w", "/home/u/.aws", "/home/v/.aws", "/loop"}, dir); held != (d.h != nil) {
			t.Errorf("OpenDir(%q) held: %v", dir, d.h != nil)
		}
		var entries []*Entry
		var errs []error
		for _, base := range bases {
			e, err := d.LstatEntry(base)
			entries, errs = append(entries, e), append(errs, err)
		}
		d.Close() // before the reads: the entries hold what they need
		for i, base := range bases {
			full := strings.TrimSuffix(dir, "/") + "/" + base
			if got, want := describe(entries[i], errs[i]), describe(walk.LstatEntry(full)); got != want {
				t.Errorf("OpenDir(%q).LstatEntry(%q):\nkernel %s\nwalk   %s", dir, base, got, want)
			}
		}
	}
	if after := countFDs(t); after != before {
		t.Errorf("descriptors %d before, %d after every Dir and Entry was closed", before, after)
	}
}

// TestReadIntoReuses: files read one after another into one buffer come out whole, the
// buffer's memory is used when it is big enough, and nothing of the previous file is left.
func TestReadIntoReuses(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "d"), 0o755)
	os.WriteFile(filepath.Join(root, "d", "big"), []byte(strings.Repeat("a", 1000)), 0o644)
	os.WriteFile(filepath.Join(root, "d", "small"), []byte("bbb"), 0o644)
	os.WriteFile(filepath.Join(root, "d", "tail"), []byte("0123456789"), 0o644)
	f, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.rfd == nil {
		t.Skip("no openat2 here: the walk reads, into memory of its own")
	}
	d := f.OpenDir("/d")
	defer d.Close()
	read := func(name string, buf []byte, limit int64, tail bool) []byte {
		t.Helper()
		e, err := d.LstatEntry(name)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		data, _, _, err := e.ReadInto(buf, limit, tail)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	big := read("big", nil, 1<<20, false)
	if len(big) != 1000 {
		t.Fatalf("big: %d bytes", len(big))
	}
	small := read("small", big[:0], 1<<20, false)
	if string(small) != "bbb" || &small[0] != &big[0] {
		t.Errorf("small: %q, in the buffer's memory: %v", small, &small[0] == &big[0])
	}
	if tail := read("tail", small[:0], 4, true); string(tail) != "6789" {
		t.Errorf("tail: %q", tail)
	}
}

// TestGlobBoundedAndLiteral: a component with a metacharacter keeps the limit smallest
// matching names of a big directory (and says more matched), both ways; a name found on
// disk, quoted, is taken as written ("i-0abc[1]" is no pattern).
func TestGlobBoundedAndLiteral(t *testing.T) {
	root := t.TempDir()
	big := filepath.Join(root, "big")
	os.Mkdir(big, 0o755)
	for i := range 3000 {
		os.WriteFile(filepath.Join(big, fmt.Sprintf("f%05d.conf", 2999-i)), nil, 0o644)
	}
	inst := filepath.Join(root, "instances", "i-0abc[1]")
	os.MkdirAll(inst, 0o755)
	os.WriteFile(filepath.Join(inst, "user-data.txt"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(root, "instances", "i-0abc1"), 0o755) // what the pattern [1] would match
	bothWays(t, func(t *testing.T, mk func(string) (*FS, error)) {
		f, err := mk(root)
		if err != nil {
			t.Fatal(err)
		}
		m, truncated, err := f.GlobN("/big/*.conf", 10)
		if err != nil || !truncated || len(m) != 10 || m[0] != "/big/f00000.conf" || m[9] != "/big/f00009.conf" {
			t.Errorf("GlobN: %v %v %v", m, truncated, err)
		}
		if m, truncated, _ := f.GlobN("/big/f0000?.conf", 10); truncated || len(m) != 10 {
			t.Errorf("exactly the limit: %d matches, truncated %v", len(m), truncated)
		}
		dirs, _ := f.Glob("/instances/*", 10)
		if len(dirs) != 2 {
			t.Fatalf("instances: %v", dirs)
		}
		m, _, err = f.GlobN(path.Join(QuoteMeta("/instances/i-0abc[1]"), "user-data.txt"), 10)
		if err != nil || len(m) != 1 || m[0] != "/instances/i-0abc[1]/user-data.txt" {
			t.Errorf("quoted name: %v %v", m, err)
		}
	})
}
