package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/procfs/procfstest"
)

// startMetadataMock runs the real IMDS emulator (ec2-metadata-mock, IMDSv2 only) on a loopback
// port and returns its base URL.
func startMetadataMock(t *testing.T) string {
	t.Helper()
	bin := testenv.Tool(t, "ec2-metadata-mock")
	port := testenv.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--hostname", "127.0.0.1", "--port", fmt.Sprint(port), "--imdsv2")
	cmd.Env = testenv.Environ("HOME=" + t.TempDir())
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start ec2-metadata-mock: %v", err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("ec2-metadata-mock did not listen on %s", addr)
		}
	}
}

// TestScanRaisesPublicSSH runs a whole scan (sshd and network probes) against the IMDS
// emulator, which gives the instance a public IPv4, and a procfs fixture where sshd listens on
// 0.0.0.0:22: the scan's correlation step must raise ssh-listening-public to HIGH.
func TestScanRaisesPublicSSH(t *testing.T) {
	imdsURL := startMetadataMock(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc/ssh/sshd_config"), []byte("PasswordAuthentication no\n"), 0o644)
	files := map[string]string{}
	for _, n := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join("..", "probes", "testdata", "procnet", n))
		if err != nil {
			t.Fatal(err)
		}
		files["net/"+n] = string(b)
	}
	proc := procfstest.Build(t, t.TempDir(), []procfstest.Proc{
		{PID: 812, Comm: "sshd", Exe: "/usr/sbin/sshd", Sockets: []uint64{1001}},
	}, files)

	report, err := Scan(context.Background(), ScanOptions{
		Root: root, Proc: proc, Probes: []string{"sshd", "network"},
		Config: Config{ProbeTimeout: Duration{10 * time.Second}},
		IMDS:   metadata.New(metadata.Options{Endpoint: imdsURL}),
	})
	if err != nil {
		t.Fatal(err)
	}
	var ssh, ip *probes.Result
	for i, r := range report.Results {
		switch r.Check {
		case "ssh-listening-public":
			ssh = &report.Results[i]
		case "public-ipv4":
			ip = &report.Results[i]
		}
	}
	if ip == nil || ip.Status != probes.Failed {
		t.Fatalf("public-ipv4: %+v (the emulator gives the instance a public address)", ip)
	}
	if ssh == nil || ssh.Status != probes.Failed || ssh.Resource != "tcp://0.0.0.0:22" {
		t.Fatalf("ssh-listening-public: %+v", ssh)
	}
	if ssh.Severity != probes.High || !strings.Contains(ssh.Reason, "raised to HIGH") {
		t.Errorf("ssh-listening-public severity %s (%s), want HIGH raised by public-ipv4", ssh.Severity, ssh.Reason)
	}
	if report.Summary.Failed < 2 {
		t.Errorf("summary %+v", report.Summary)
	}
}
