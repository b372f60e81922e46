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
	go func() { done <- hostFacts(context.Background(), fsys, root, procfs.New(""), false) }()
	select {
	case f := <-done:
		if f.Platform != "" || f.PlatformVersion != "" {
			t.Errorf("facts read outside the image or from a FIFO: %+v", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hostFacts hung on the image's release files")
	}
}
