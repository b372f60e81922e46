package procfs

import (
	"context"
	"os"
	"path/filepath"
	"slices"
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
	for _, p := range []FS{{Dir: dir}, New(dir)} {
		owners, unreadable, err := p.SocketOwners(context.Background(), map[uint64]bool{5001: true, 6499: true})
		if err != nil || !slices.Equal(owners[5001], []int{1, 2}) || !slices.Equal(owners[6499], []int{2}) || unreadable != 1 {
			t.Errorf("owners %v unreadable %d err %v", owners, unreadable, err)
		}
		owners, unreadable, err = p.SocketOwners(context.Background(), nil)
		if err != nil || len(owners) != 0 || unreadable != 1 {
			t.Errorf("none wanted: owners %v unreadable %d err %v", owners, unreadable, err)
		}
	}
}
