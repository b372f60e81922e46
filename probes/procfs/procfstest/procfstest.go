// Package procfstest builds procfs-shaped fixture trees at test time: per-process comm,
// cmdline, exe links and fd links to sockets (git keeps no symlinks, so they are made here).
package procfstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Proc is one fixture process.
type Proc struct {
	PID     int
	Comm    string
	Exe     string   // exe link target; "" for none
	Cmdline []string // written NUL-separated
	Sockets []uint64 // socket inodes held open, as fd links "socket:[N]"
	Files   []string // other fd link targets
	// NoFD makes the fd directory unlistable, as another user's is without privilege (a
	// chmod would not stop root, so fd is a plain file instead).
	NoFD bool
}

// Build writes procs into dir (creating it), plus any extra files (path relative to dir ->
// content, e.g. "net/tcp", "cmdline"), and returns dir.
func Build(t testing.TB, dir string, procs []Proc, files map[string]string) string {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("procfstest: %v", err)
		}
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(content), 0o644))
	}
	for _, p := range procs {
		pd := filepath.Join(dir, strconv.Itoa(p.PID))
		fd := filepath.Join(pd, "fd")
		must(os.MkdirAll(pd, 0o755))
		if p.NoFD {
			must(os.WriteFile(fd, nil, 0o600))
		} else {
			must(os.MkdirAll(fd, 0o755))
		}
		must(os.WriteFile(filepath.Join(pd, "comm"), []byte(p.Comm+"\n"), 0o644))
		cmd := strings.Join(p.Cmdline, "\x00")
		if cmd != "" {
			cmd += "\x00"
		}
		must(os.WriteFile(filepath.Join(pd, "cmdline"), []byte(cmd), 0o644))
		if p.Exe != "" {
			must(os.Symlink(p.Exe, filepath.Join(pd, "exe")))
		}
		if p.NoFD {
			continue
		}
		n := 0
		for _, ino := range p.Sockets {
			must(os.Symlink(fmt.Sprintf("socket:[%d]", ino), filepath.Join(fd, strconv.Itoa(n))))
			n++
		}
		for _, f := range p.Files {
			must(os.Symlink(f, filepath.Join(fd, strconv.Itoa(n))))
			n++
		}
	}
	return dir
}
