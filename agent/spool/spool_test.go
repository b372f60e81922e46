package spool

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func items(n int, size int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", size)))
	}
	return out
}

func TestPutReadReplace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(Logs, items(3, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(Findings, items(2, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(Logs, items(1, 1)); err != nil {
		t.Fatal(err)
	}
	logs, _ := s.Pending(Logs)
	if len(logs) != 2 || logs[0] >= logs[1] {
		t.Fatalf("pending logs %v, want two, oldest first", logs)
	}
	b, err := s.Read(logs[0])
	if err != nil || len(b.Items) != 3 || b.Kind != Logs {
		t.Fatalf("read: %+v %v", b, err)
	}
	if err := s.Replace(logs[0], Logs, b.Items[2:]); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Read(logs[0]); len(b.Items) != 1 {
		t.Fatalf("after replace: %d items", len(b.Items))
	}
	if err := s.Replace(logs[0], Logs, nil); err != nil {
		t.Fatal(err)
	}
	if logs, _ := s.Pending(Logs); len(logs) != 1 {
		t.Fatalf("after removal: %v", logs)
	}
	if runtime.GOOS != "windows" {
		fi, _ := os.Stat(dir)
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("dir mode %v", fi.Mode().Perm())
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			fi, _ := e.Info()
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v", e.Name(), fi.Mode().Perm())
			}
		}
	}
	// A reopened spool continues the sequence after the newest file.
	s2, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	s2.Put(Logs, items(1, 1))
	logs, _ = s2.Pending(Logs)
	if len(logs) != 2 || logs[1] <= logs[0] {
		t.Fatalf("after reopen: %v", logs)
	}
}

func TestOpenTightensAndCleans(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, ".00000000000000000007-logs.json.123.tmp"), []byte("{half"), 0o600)
	if _, err := Open(dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("leftover temp files kept: %v", entries)
	}
	if fi, _ := os.Stat(dir); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o700 {
		t.Errorf("mode %v not tightened to 0700", fi.Mode().Perm())
	}
}

// TestBound: past the bound the oldest log batches go, counted; findings never.
func TestBound(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "spool"), 10_000)
	if err != nil {
		t.Fatal(err)
	}
	s.Put(Findings, items(10, 500)) // ~5 KB, never dropped
	total := 0
	for range 5 {
		d, err := s.Put(Logs, items(2, 1000)) // ~2 KB each
		if err != nil {
			t.Fatal(err)
		}
		total += d
	}
	if total == 0 {
		t.Fatal("nothing dropped past the bound")
	}
	_, size, _ := s.Size()
	if size > 10_000 {
		t.Errorf("spool holds %d bytes, bound 10000", size)
	}
	if f, _ := s.Pending(Findings); len(f) != 1 {
		t.Error("findings dropped")
	}
	logs, _ := s.Pending(Logs)
	if total != (5-len(logs))*2 {
		t.Errorf("dropped %d events, but %d of 5 batches of 2 are gone", total, 5-len(logs))
	}
	// Findings alone past the bound are still kept.
	if _, err := s.Put(Findings, items(20, 1000)); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.Pending(Findings); len(f) != 2 {
		t.Errorf("findings over the bound not kept: %v", f)
	}
}

func TestReadRefusesJunk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, _ := Open(dir, 1<<20)
	os.WriteFile(filepath.Join(dir, "00000000000000000001-logs.json"), []byte("not json"), 0o600)
	if _, err := s.Read("00000000000000000001-logs.json"); err == nil {
		t.Error("junk batch read without error")
	}
	if runtime.GOOS != "windows" {
		os.Symlink("/etc/passwd", filepath.Join(dir, "00000000000000000002-logs.json"))
		if _, err := s.Read("00000000000000000002-logs.json"); err == nil {
			t.Error("followed a symlink out of the spool")
		}
	}
}

func TestLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	l, err := Acquire(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Acquire(ctx, p); err == nil {
		t.Fatal("second lock acquired while the first is held")
	}
	l.Release()
	l2, err := Acquire(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	l2.Release()
}
