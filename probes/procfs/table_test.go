package procfs_test

import (
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/ec2sec/ec2sec/probes/procfs"
	"github.com/ec2sec/ec2sec/probes/procfs/procfstest"
)

// TestTableReadsOnce: every caller of one table sees the same list, read once (a process that
// exits after the first read is still in it), with "" for a comm that cannot be read.
func TestTableReadsOnce(t *testing.T) {
	dir := procfstest.Build(t, t.TempDir(), []procfstest.Proc{
		{PID: 7, Comm: "sshd"}, {PID: 3, Comm: "agetty"}, {PID: 12, Comm: "amazon-ssm-agen"},
	}, nil)
	if err := os.Remove(filepath.Join(dir, "12", "comm")); err != nil {
		t.Fatal(err)
	}
	tab := procfs.NewTable(dir)
	want := []procfs.Proc{{PID: 3, Comm: "agetty"}, {PID: 7, Comm: "sshd"}, {PID: 12, Comm: ""}}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			got, err := tab.Procs()
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("Procs() = %v, %v; want %v", got, err, want)
			}
		})
	}
	wg.Wait()
	if err := os.RemoveAll(filepath.Join(dir, "7")); err != nil {
		t.Fatal(err)
	}
	if got, _ := tab.Procs(); !reflect.DeepEqual(got, want) {
		t.Errorf("second Procs() = %v; want the first read, %v", got, want)
	}
	if got, _ := procfs.NewTable(dir).Procs(); len(got) != 2 {
		t.Errorf("a new table sees %v; want the 2 processes left", got)
	}
}

// TestTablePIDsShared: PIDs is the listing Procs uses, made once: a process started after it
// is in neither (the credentials probe reads environments from the same listing).
func TestTablePIDsShared(t *testing.T) {
	dir := procfstest.Build(t, t.TempDir(), []procfstest.Proc{{PID: 4, Comm: "a"}, {PID: 9, Comm: "b"}}, nil)
	tab := procfs.NewTable(dir)
	pids, err := tab.PIDs()
	if err != nil || !reflect.DeepEqual(pids, []int{4, 9}) {
		t.Fatalf("PIDs() = %v, %v", pids, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "21"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "21", "comm"), []byte("c\n"), 0o644)
	procs, _ := tab.Procs()
	if len(procs) != 2 {
		t.Errorf("Procs() = %v; want the 2 processes of the first listing", procs)
	}
	if tab.FS().Dir != dir {
		t.Errorf("FS().Dir = %q, want %q", tab.FS().Dir, dir)
	}
}
