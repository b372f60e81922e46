package agent

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/procfs"
)

// TestHostFactsHostileImage: a release file that is a FIFO, a device or a link out of the
// root is not read (gopsutil would block on the FIFO and read the device forever).
func TestHostFactsHostileImage(t *testing.T) {
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	os.MkdirAll(etc, 0o755)
	if err := syscall.Mkfifo(filepath.Join(etc, "os-release"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Symlink("/dev/zero", filepath.Join(etc, "lsb-release"))
	os.Symlink("../../../../../../etc/debian_version", filepath.Join(etc, "debian_version"))
	fsys, err := hostfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	done := make(chan Facts, 1)
	go func() { done <- hostFacts(context.Background(), fsys, root, "", procfs.New(""), false) }()
	select {
	case f := <-done:
		if f.Platform != "" || f.PlatformVersion != "" {
			t.Errorf("facts read outside the image or from a FIFO: %+v", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hostFacts hung on the image's release files")
	}
}

// TestHostFactsNeverExecute: without an lsb-release in the scanned /etc, gopsutil runs
// /usr/bin/lsb_release: the agent host's program (its answer would name the host's
// distribution for an image), a process the agent must never start, and most of a scan's
// wall time. No child process may run while the facts are read, for an image or for "/".
func TestHostFactsNeverExecute(t *testing.T) {
	if _, err := os.Stat("/usr/bin/lsb_release"); err != nil {
		t.Skip("no /usr/bin/lsb_release here: an exec could not be told from none")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/debian_version"), []byte("12.7\n"), 0o644) // as Debian ships it
	tmp := t.TempDir()
	for _, r := range []string{root, "/"} {
		fsys, err := hostfs.New(r)
		if err != nil {
			t.Fatal(err)
		}
		before := childTime(t)
		f := hostFacts(context.Background(), fsys, r, tmp, procfs.New(""), false)
		fsys.Close()
		if after := childTime(t); after != before {
			t.Errorf("root %s: a child process ran while the facts were read (children's CPU %v -> %v)", r, before, after)
		}
		if r == root && (f.Platform != "debian" || f.PlatformVersion != "12.7") {
			t.Errorf("debian_version alone: %+v, want debian 12.7", f)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the copy of /etc was left behind: %v", left)
	}
}

// childTime is the CPU time of this process's waited-for children, which any child adds to.
func childTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
