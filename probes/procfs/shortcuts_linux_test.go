package procfs

import (
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/ec2sec/ec2sec/probes/procfs/procfstest"
)

// TestReadFileRefusesFIFO: with no fstat before reading, a FIFO in a fixture tree is still
// refused (and never blocks), an empty regular file still reads as empty.
func TestReadFileRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "5"), 0o755)
	os.MkdirAll(filepath.Join(dir, "6"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(dir, "5", "environ"), 0o644); err != nil {
		t.Skip(err)
	}
	os.WriteFile(filepath.Join(dir, "6", "environ"), nil, 0o644)
	os.MkdirAll(filepath.Join(dir, "6", "comm"), 0o755)
	for _, p := range []FS{{Dir: dir}, New(dir)} {
		if b, _, err := p.Environ(5, 100, nil); err == nil {
			t.Errorf("FIFO read as %q", b)
		}
		if b, _, err := p.Environ(6, 100, nil); err != nil || len(b) != 0 {
			t.Errorf("empty file: %q %v", b, err)
		}
		if c, err := p.Comm(6); err == nil {
			t.Errorf("directory read as comm %q", c)
		}
	}
}

// TestSocketWalkShortcuts: the fd walk gives the same owners and the same count of
// unreadable processes whatever it skips: a process with more descriptors than one
// directory read returns, and no wanted inode at all (nothing read but the count).
func TestSocketWalkShortcuts(t *testing.T) {
	var many []uint64
	for i := range 1500 {
		many = append(many, uint64(5000+i))
	}
	dir := procfstest.Build(t, t.TempDir(), []procfstest.Proc{
		{PID: 1, Comm: "systemd", Sockets: []uint64{5001}},
		{PID: 2, Comm: "java", Sockets: many},
		{PID: 3, Comm: "x", NoFD: true},
	}, nil)
	walk := func(p FS, wanted map[uint64]bool) (owners map[uint64][]int, unreadable int) {
		owners = map[uint64][]int{}
		for _, pid := range []int{1, 2, 3} {
			e := p.fdSockets(pid, wanted)
			if e.unreadable {
				unreadable++
			}
			for _, ino := range e.inodes {
				owners[ino] = append(owners[ino], pid)
			}
		}
		return owners, unreadable
	}
	for _, p := range []FS{{Dir: dir}, New(dir)} {
		owners, unreadable := walk(p, map[uint64]bool{5001: true, 6499: true})
		if !slices.Equal(owners[5001], []int{1, 2}) || !slices.Equal(owners[6499], []int{2}) || unreadable != 1 {
			t.Errorf("owners %v unreadable %d", owners, unreadable)
		}
		owners, unreadable = walk(p, nil)
		if len(owners) != 0 || unreadable != 1 {
			t.Errorf("none wanted: owners %v unreadable %d", owners, unreadable)
		}
	}
}

// TestFdWalkUnderSignals: a process's fd directory is listed whole every time, though Go's
// preemption signals end directory reads early (a read that leaves room in its buffer is not
// the last: believing it was lost entries in about one listing in two thousand here, and the
// fd walk a listener's owner).
func TestFdWalkUnderSignals(t *testing.T) {
	dir := fmt.Sprintf("/proc/%d/fd", os.Getpid())
	if _, err := os.Stat(dir); err != nil {
		t.Skip("no /proc here")
	}
	for range 100 { // a directory of a few hundred entries
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // collections stop every goroutine with a signal
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	want, err := os.ReadDir(dir) // holds its own descriptor, as each listing below does
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10000 {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		names, err := readDirFD(fd, dir, maxFDsPerPID)
		unix.Close(fd)
		if err != nil || len(names) != len(want) {
			t.Fatalf("listing %d: %d entries (%v), want %d", i, len(names), err, len(want))
		}
	}
}
