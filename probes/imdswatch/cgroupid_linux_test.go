package imdswatch

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestWalkCgroups: every directory is named by its inode, as /proc/<pid>/cgroup names it; a
// symbolic link is not followed; the walk stops at its bound.
func TestWalkCgroups(t *testing.T) {
	root := t.TempDir()
	unit := filepath.Join(root, "system.slice", "cron.service")
	outside := t.TempDir()
	for _, d := range []string{unit, filepath.Join(outside, "elsewhere")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	paths := walkCgroups(root, maxCgroupDirs)
	if p := paths[inode(t, unit)]; p != "/system.slice/cron.service" {
		t.Errorf("cron.service's inode maps to %q", p)
	}
	if p := paths[inode(t, root)]; p != "/" {
		t.Errorf("the root maps to %q", p)
	}
	if p, ok := paths[inode(t, filepath.Join(outside, "elsewhere"))]; ok {
		t.Errorf("the walk followed a symbolic link to %q", p)
	}

	if n := len(walkCgroups(root, 2)); n != 2 {
		t.Errorf("%d directories indexed, want the bound 2", n)
	}
}

// TestCgroupIndexOnlyCgroup2: a root that is not a cgroup2 file system (the watcher's private
// mount point, once unmounted, is a plain path in /tmp) is never walked.
func TestCgroupIndexOnlyCgroup2(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "docker", strings.Repeat("ab", 32))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	idx := cgroupIndex{root: root}
	if p, ok := idx.path(inode(t, d), time.Now()); ok {
		t.Errorf("a plain directory tree was indexed: %q", p)
	}
}

// realCgroup makes a cgroup under the host's cgroup2 root and removes it when the test ends.
func realCgroup(t *testing.T, rel string) (root, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "making a cgroup needs root")
	}
	root, err := cgroup2Root("/proc/self/mountinfo")
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	top := filepath.Join(root, fmt.Sprintf("ec2sec-test-%d", os.Getpid()))
	dir = filepath.Join(top, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Children first: cgroupfs removes only empty directories.
		for d := dir; strings.HasPrefix(d, top); d = filepath.Dir(d) {
			os.Remove(d)
		}
	})
	return root, dir
}

// TestCgroupIndexRate: an id that is not in the index costs at most one walk a second; a
// cgroup made after a walk is found by the next one.
func TestCgroupIndexRate(t *testing.T) {
	root, dir := realCgroup(t, "a.scope")
	idx := cgroupIndex{root: root}
	now := time.Now()
	if _, ok := idx.path(inode(t, dir), now); !ok {
		t.Fatal("a cgroup of the host's hierarchy is not found")
	}
	later := filepath.Join(filepath.Dir(dir), "b.scope")
	if err := os.Mkdir(later, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(later)
	if p, ok := idx.path(inode(t, later), now.Add(100*time.Millisecond)); ok {
		t.Errorf("a miss walked again within the second: %q", p)
	}
	want := strings.TrimPrefix(later, root)
	if p, _ := idx.path(inode(t, later), now.Add(2*time.Second)); p != want {
		t.Errorf("after the second: %q, want %q", p, want)
	}
}

// TestEnrichGoneByCgroup: a caller in a container that has exited before its /proc entry is
// read (here: a procfs with no entries) is still placed in its container, through the
// kernel's cgroup id of the connecting task.
func TestEnrichGoneByCgroup(t *testing.T) {
	id := strings.Repeat("c0", 32)
	_, dir := realCgroup(t, "docker-"+id+".scope")
	curl := testenv.Tool(t, "curl")
	imds := fakeimds.New(t)
	imds.Set(func(s *fakeimds.Server) { s.V1 = true })
	dest := netip.MustParseAddrPort(strings.TrimPrefix(imds.URL, "http://"))
	w := needBPF(t, Options{Dests: []netip.AddrPort{dest}})
	var col collector
	go Serve(w, &Enricher{Proc: t.TempDir(), Cgroupfs: w.Cgroup()}, NewTable(nil, nil), col.add)
	defer w.Close()

	// The shell moves itself into the container's cgroup, then becomes curl (same pid).
	script := fmt.Sprintf("echo 0 > %s/cgroup.procs && exec %s -s -o /dev/null %s/latest/meta-data/", dir, curl, imds.URL)
	pid := run(t, exec.Command("sh", "-c", script))
	_, ids := col.wait(t, pid, 1)
	got := ids[0]
	if !got.Gone || got.Container != id || got.Runtime != "docker" || got.Comm != "curl" {
		t.Errorf("identity %+v: want gone, container %s (docker), comm curl", got, id)
	}
}
