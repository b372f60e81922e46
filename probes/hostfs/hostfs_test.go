//go:build unix

package hostfs

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tree builds a root with a secret outside it and links trying to reach it.
func tree(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{"etc", "var/lib/cloud/instances/i-1", "home/u/.aws", "loop"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("OUTSIDE"), 0o644)
	os.WriteFile(filepath.Join(root, "secret"), []byte("INSIDE"), 0o644)
	os.WriteFile(filepath.Join(root, "var/lib/cloud/instances/i-1/user-data.txt"), []byte("#!/bin/sh\n"), 0o644)
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	link("/var/lib/cloud/instances/i-1", "var/lib/cloud/instance") // absolute, inside
	link(filepath.Join(outside, "secret"), "home/u/abs-out")       // absolute host path: re-rooted
	link("../../../../outside/secret", "home/u/rel-out")           // climbs above the root
	link("../../../secret", "home/u/.aws/credentials")             // relative, inside
	link("b", "loop/a")                                            // loop
	link("a", "loop/b")
	link("/dev/zero", "home/u/zero")
	return root, outside
}

func TestSymlinksStayInside(t *testing.T) { bothWays(t, testSymlinksStayInside) }

func testSymlinksStayInside(t *testing.T, mk func(string) (*FS, error)) {
	root, _ := tree(t)
	f, err := mk(root)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) (string, error) {
		b, _, err := f.ReadFile(name, 1<<20)
		return string(b), err
	}
	if got, err := read("/var/lib/cloud/instance/user-data.txt"); err != nil || got != "#!/bin/sh\n" {
		t.Errorf("absolute link inside root: %q %v", got, err)
	}
	if got, err := read("/home/u/.aws/credentials"); err != nil || got != "INSIDE" {
		t.Errorf("relative link inside root: %q %v", got, err)
	}
	for _, name := range []string{"/home/u/abs-out", "/home/u/rel-out", "/../outside/secret", "../../outside/secret"} {
		got, err := read(name)
		if strings.Contains(got, "OUTSIDE") {
			t.Errorf("%s read a file outside the root", name)
		}
		if err == nil && got != "INSIDE" {
			t.Errorf("%s: read %q", name, got)
		}
	}
	if _, err := read("/loop/a"); !errors.Is(err, ErrTooManyLinks) {
		t.Errorf("loop: err %v, want ErrTooManyLinks", err)
	}
	if p, err := f.Resolve("/var/lib/cloud/instance"); err != nil || p != "/var/lib/cloud/instances/i-1" {
		t.Errorf("Resolve: %q %v", p, err)
	}
	fi, err := f.Lstat("/var/lib/cloud/instance")
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat did not describe the link itself: %v %v", fi, err)
	}
}

func TestOnlyRegularFiles(t *testing.T) { bothWays(t, testOnlyRegularFiles) }

func testOnlyRegularFiles(t *testing.T, mk func(string) (*FS, error)) {
	root, _ := tree(t)
	fifo := filepath.Join(root, "etc", "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	f, _ := mk(root)
	done := make(chan error, 1)
	go func() {
		_, _, err := f.ReadFile("/etc/fifo", 100)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("FIFO: err %v, want ErrNotRegular", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}
	// /dev/zero inside the root: the link re-roots to <root>/dev/zero, which does not exist;
	// a device node in the tree is refused before it is opened.
	if _, _, err := f.ReadFile("/home/u/zero", 100); err == nil {
		t.Error("read through a link to /dev/zero")
	}
	if _, _, err := f.ReadFile("/etc", 100); !errors.Is(err, ErrNotRegular) {
		t.Errorf("directory: err %v", err)
	}
	if os.Getuid() == 0 {
		os.MkdirAll(filepath.Join(root, "dev"), 0o755)
		if err := syscall.Mknod(filepath.Join(root, "dev", "zero"), syscall.S_IFCHR|0o666, 1<<8|5); err == nil {
			if _, _, err := f.ReadFile("/home/u/zero", 100); !errors.Is(err, ErrNotRegular) {
				t.Errorf("device: err %v, want ErrNotRegular", err)
			}
		}
	}
}

func TestReadLimit(t *testing.T) { bothWays(t, testReadLimit) }

func testReadLimit(t *testing.T, mk func(string) (*FS, error)) {
	root := t.TempDir()
	big := filepath.Join(root, "big")
	fh, _ := os.Create(big)
	fh.Truncate(300 << 20) // sparse 300 MB
	fh.Close()
	f, _ := mk(root)
	b, truncated, err := f.ReadFile("/big", 1<<20)
	if err != nil || !truncated || len(b) != 1<<20 {
		t.Errorf("len %d truncated %v err %v", len(b), truncated, err)
	}
	os.WriteFile(filepath.Join(root, "small"), []byte("abc"), 0o644)
	b, truncated, err = f.ReadFile("/small", 3)
	if err != nil || truncated || string(b) != "abc" {
		t.Errorf("exact limit: %q %v %v", b, truncated, err)
	}
}

func TestGlobAndReadDir(t *testing.T) { bothWays(t, testGlobAndReadDir) }

func testGlobAndReadDir(t *testing.T, mk func(string) (*FS, error)) {
	root, _ := tree(t)
	f, _ := mk(root)
	got, err := f.Glob("/var/lib/cloud/instances/*/user-data.txt", 0)
	if err != nil || len(got) != 1 || got[0] != "/var/lib/cloud/instances/i-1/user-data.txt" {
		t.Errorf("Glob: %v %v", got, err)
	}
	for i := range 5 {
		os.WriteFile(filepath.Join(root, "etc", string(rune('a'+i))), nil, 0o644)
	}
	es, truncated, err := f.ReadDir("/etc", 3)
	if err != nil || !truncated || len(es) != 3 {
		t.Errorf("ReadDir limit: %d %v %v", len(es), truncated, err)
	}
}

// bothWays runs a test with the kernel's resolution (where there is one) and with the
// userspace walk: both must keep every guarantee.
func bothWays(t *testing.T, test func(*testing.T, func(string) (*FS, error))) {
	t.Run("kernel", func(t *testing.T) {
		test(t, func(root string) (*FS, error) {
			f, err := New(root)
			if err == nil {
				t.Cleanup(func() { f.Close() })
			}
			return f, err
		})
	})
	t.Run("walk", func(t *testing.T) { test(t, NewPortable) })
}

func TestNewRejectsNonDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "file")
	os.WriteFile(p, nil, 0o644)
	if _, err := New(p); err == nil {
		t.Error("a file as root was accepted")
	}
}

// FuzzQuoteMeta: a name found on disk, quoted, is a pattern that matches exactly that name
// and that Glob takes literally.
func FuzzQuoteMeta(f *testing.F) {
	for _, s := range []string{"i-0abc[1]", "a*b", `back\slash`, "?", "[", "plain", "é[x]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" || strings.Contains(name, "/") {
			return
		}
		q := QuoteMeta(name)
		if lit, ok := literal(q); !ok || lit != name {
			t.Fatalf("literal(QuoteMeta(%q)) = %q, %v", name, lit, ok)
		}
		if ok, err := path.Match(q, name); !ok || err != nil {
			t.Fatalf("path.Match(%q, %q) = %v, %v", q, name, ok, err)
		}
	})
}
