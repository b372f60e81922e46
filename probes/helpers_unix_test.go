//go:build unix

package probes

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// entry is one node of a fixture tree: a file (with mode and owner), a symlink, a FIFO or a dir.
type entry struct {
	path    string // inside the root
	content string
	mode    os.FileMode // default 0644 (files), 0755 (dirs)
	uid     int         // owner when > 0 (needs root); else as created
	link    string      // a symlink to this target
	fifo    bool
	dir     bool
}

// buildTree creates the entries under root at run time (git keeps no modes, owners, FIFOs or
// links). Owners need root; callers skip owner-dependent assertions otherwise.
func buildTree(t testing.TB, root string, entries []entry) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(root, filepath.FromSlash(e.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case e.dir:
			mode := e.mode
			if mode == 0 {
				mode = 0o755
			}
			if err := os.MkdirAll(p, mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, mode)
		case e.link != "":
			if err := os.Symlink(e.link, p); err != nil {
				t.Fatal(err)
			}
		case e.fifo:
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			mode := e.mode
			if mode == 0 {
				mode = 0o644
			}
			if err := os.WriteFile(p, []byte(e.content), mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
		if e.uid > 0 && os.Geteuid() == 0 && e.link == "" {
			if err := os.Lchown(p, e.uid, e.uid); err != nil {
				t.Fatal(err)
			}
		}
	}
}
