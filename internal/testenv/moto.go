package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
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
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		Missing(t, "moto_server does not start: "+err.Error())
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	url := "http://" + addr
	// Listening is not serving yet: wait for moto's own API to answer.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			if resp, err := http.Get(url + "/moto-api/"); err == nil {
				resp.Body.Close()
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not come up on %s within 30s:\n%s", addr, out.String())
		}
	}
}
