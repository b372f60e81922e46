package agent

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/procfs"
)

// TestHostFactsOfImage: an image's distribution comes from its own /etc (through gopsutil's
// HOST_ETC), never from the host running the scan; its kernel facts stay unknown.
func TestHostFactsOfImage(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("NAME=\"Amazon Linux\"\nID=\"amzn\"\nVERSION_ID=\"2023\"\n"), 0o644)
	os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")) // as distributions link it
	fsys, err := hostfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	f := hostFacts(context.Background(), fsys, root, "", procfs.New(""), false)
	if f.Platform != "amazon" || f.PlatformVersion != "2023" || f.OS != "linux" {
		t.Errorf("image facts %+v, want amazon 2023 on linux", f)
	}
	if f.KernelVersion != "" || f.Arch != "" || !f.BootTime.IsZero() || f.Virtualization != "" {
		t.Errorf("an offline image has no kernel facts: %+v", f)
	}
	if os.Getenv("HOST_ETC") != "" {
		t.Errorf("HOST_ETC leaked into the process environment")
	}
}

// TestHostFactsLive: the running host's kernel, architecture and boot time, with /proc.
func TestHostFactsLive(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("procfs")
	}
	fsys, err := hostfs.New("/")
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	f := hostFacts(context.Background(), fsys, "/", "", procfs.New("/proc"), true)
	if f.OS != "linux" || f.KernelVersion == "" || f.Arch == "" || f.BootTime.IsZero() || f.BootTime.After(time.Now()) {
		t.Errorf("live facts %+v", f)
	}
	// A procfs fixture is not the kernel's: no kernel facts from it.
	if g := hostFacts(context.Background(), fsys, "/", "", procfs.New(t.TempDir()), true); g.KernelVersion != "" || !g.BootTime.IsZero() {
		t.Errorf("kernel facts from a fixture procfs: %+v", g)
	}
}

// TestRunSummaryHasHostFacts: the CloudWatch run summary carries the host block, facts too.
func TestRunSummaryHasHostFacts(t *testing.T) {
	rep := &Report{Schema: Schema, ScannedAt: time.Now().UTC(), Host: Host{InstanceID: "i-0123456789abcdef0", Facts: Facts{OS: "linux", Platform: "amazon", PlatformVersion: "2023", KernelVersion: "6.1.0", Arch: "aarch64"}}}
	ev := summaryEvent(rep, SpoolStats{}, 0)
	for _, want := range []string{`"platform":"amazon"`, `"platform_version":"2023"`, `"kernel_version":"6.1.0"`, `"arch":"aarch64"`} {
		if !strings.Contains(ev, want) {
			t.Errorf("run summary lacks %s: %s", want, ev)
		}
	}
}
