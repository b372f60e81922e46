package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"
)

// StartMoto runs moto_server (the AWS service emulator from the machine's Python) on a free
// loopback port for the test and returns its base URL. A missing moto_server skips the test,
// or fails it under CI=true.
func StartMoto(t testing.TB) string {
	t.Helper()
	bin := Tool(t, "moto_server")
	port := FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Env = Environ("HOME=" + t.TempDir())
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start moto_server: %v", err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not listen on %s within 30s", addr)
		}
	}
}
