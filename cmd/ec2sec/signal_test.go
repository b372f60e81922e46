//go:build unix

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

// TestWatchdog: the first signal cancels the command; one that has not ended grace later,
// or a second signal, ends the process (exit 3) rather than hang.
func TestWatchdog(t *testing.T) {
	testenv.System(t)
	for _, second := range []bool{false, true} {
		sigs := make(chan os.Signal, 2)
		cancelled, exited := make(chan struct{}), make(chan int, 1)
		var stderr bytes.Buffer
		go watchdog(sigs, func() { close(cancelled) }, map[bool]time.Duration{false: 50 * time.Millisecond, true: time.Hour}[second], &stderr, func(c int) { exited <- c })
		sigs <- syscall.SIGTERM
		<-cancelled
		if second {
			sigs <- syscall.SIGTERM
		}
		select {
		case c := <-exited:
			if c != 3 {
				t.Errorf("exit %d, want 3", c)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("second signal %v: the watchdog did not end the process", second)
		}
	}
}

// TestBinaryFIFOKeysNeverHang: FIFOs as the fleet key and as the state dir's fingerprint.key
// do not hang `ec2sec scan` (they did, deaf to SIGTERM): the fleet key is refused at once
// (exit 3, saying why), the host key replaced by an ephemeral one; a SIGTERM sent meanwhile
// ends the process within seconds either way.
func TestBinaryFIFOKeysNeverHang(t *testing.T) {
	testenv.System(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o700)
	fleet := filepath.Join(dir, "fleet.key")
	for _, p := range []string{fleet, filepath.Join(state, "fingerprint.key")} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	for name, body := range map[string]string{
		"fleet key": "state_dir: " + state + "\nfingerprint_key_file: " + fleet + "\n",
		"host key":  "state_dir: " + state + "\n",
	} {
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		os.WriteFile(cfg, []byte(body), 0o600)
		cmd := exec.Command(binary(t), "scan", "--config", cfg, "--root", t.TempDir(), "--proc", "", "--probes", "credentials")
		cmd.Env = testenv.Environ()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		time.AfterFunc(2*time.Second, func() { cmd.Process.Signal(syscall.SIGTERM) })
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("%s a FIFO: ec2sec scan did not end within 15 s (SIGTERM after 2 s)\n%s", name, stderr.String())
		}
		code := cmd.ProcessState.ExitCode()
		switch name {
		case "fleet key":
			if code != 2 && code != 3 || !strings.Contains(stderr.String(), "not a regular file") {
				t.Errorf("fleet key a FIFO: exit %d, want a refusal saying not a regular file\n%s", code, stderr.String())
			}
		case "host key":
			if code != 0 {
				t.Errorf("host key a FIFO: exit %d, want 0 (an ephemeral key)\n%s", code, stderr.String())
			}
		}
	}
}
