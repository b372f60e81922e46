package procfs

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestPIDsCommStatus(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"1", "42", "self", "net", "7"} {
		os.MkdirAll(filepath.Join(dir, p), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "42", "comm"), []byte("dockerd\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "42", "status"), []byte("Name:\tdockerd\nPPid:\t1\nUid:\t0\t0\t0\t0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "42", "cmdline"), []byte("/usr/bin/dockerd\x00-H\x00fd://\x00"), 0o644)
	p := FS{Dir: dir}
	pids, err := p.PIDs()
	if err != nil || !slices.Equal(pids, []int{1, 7, 42}) {
		t.Errorf("PIDs %v %v", pids, err)
	}
	if c, err := p.Comm(42); err != nil || c != "dockerd" {
		t.Errorf("Comm %q %v", c, err)
	}
	if s, err := p.ReadStatus(42); err != nil || s.Name != "dockerd" || s.PPID != 1 || s.UID != 0 {
		t.Errorf("Status %+v %v", s, err)
	}
	if a, err := p.Cmdline(42); err != nil || !slices.Equal(a, []string{"/usr/bin/dockerd", "-H", "fd://"}) {
		t.Errorf("Cmdline %q %v", a, err)
	}
	if _, err := p.Comm(7); err == nil {
		t.Error("a process without comm read fine")
	}
}

func TestParseStatusRejectsGarbage(t *testing.T) {
	for _, b := range []string{"", "Uid:\tx\ty\n", "Name:\tx\n", "Uid:\t1\n"} {
		if _, err := ParseStatus([]byte(b)); err == nil {
			t.Errorf("%q parsed", b)
		}
	}
}

func TestReadFileBounded(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "big"), make([]byte, 1000), 0o644)
	b, truncated, err := FS{Dir: dir}.ReadFile("big", 100)
	if err != nil || !truncated || len(b) != 100 {
		t.Errorf("%d %v %v", len(b), truncated, err)
	}
}

func TestTableSocketsReadOnce(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "net"), 0o755)
	row := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n"
	os.WriteFile(filepath.Join(dir, "net", "tcp"), []byte(row), 0o644)
	for _, pid := range []string{"7", "8"} {
		os.MkdirAll(filepath.Join(dir, pid, "fd"), 0o755)
		os.Symlink("socket:[4242]", filepath.Join(dir, pid, "fd", "3"))
	}
	os.MkdirAll(filepath.Join(dir, "9"), 0o755)
	os.WriteFile(filepath.Join(dir, "9", "fd"), nil, 0o600) // a plain file: its fds cannot be listed
	tb := NewTable(dir)
	ctx := context.Background()
	// Asked about 7 only, the walk reads 7 only.
	s, err := tb.Sockets(ctx, []int{7})
	if err != nil || len(s.Listeners) != 1 || !slices.Equal(s.Owners[4242], []int{7}) || s.Unreadable != 0 {
		t.Fatalf("sockets of 7: %+v, err %v", s, err)
	}
	if s, _ := tb.Sockets(ctx, []int{}); len(s.Owners) != 0 || len(s.Listeners) != 1 {
		t.Errorf("sockets of no process: %+v", s)
	}
	s, err = tb.Sockets(ctx, nil)
	if err != nil || !slices.Equal(s.Owners[4242], []int{7, 8}) || s.Unreadable != 1 {
		t.Fatalf("sockets of all: %+v, err %v", s, err)
	}
	// A second caller gets the same answer without a second walk: remove the processes and ask.
	os.RemoveAll(filepath.Join(dir, "7"))
	os.RemoveAll(filepath.Join(dir, "8"))
	if s2, _ := tb.Sockets(ctx, nil); !slices.Equal(s2.Owners[4242], []int{7, 8}) || s2.Unreadable != 1 {
		t.Errorf("the fd walk ran twice for one table: %+v", s2)
	}
}
