package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRunSignals runs `ec2sec run` as a process: it reports its first scan, reloads its
// config on SIGHUP, and on SIGTERM stops with exit 0 after a final flush. Every log line on
// stderr is JSON.
func TestRunSignals(t *testing.T) {
	testenv.System(t)
	if runtime.GOOS == "windows" {
		t.Skip("POSIX signals")
	}
	f := awsfake.New(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("splay: 0s\nstate_dir: " + filepath.Join(dir, "state") + "\n")
	cmd := exec.Command(binary(t), "run", "--config", cfg, "--root", t.TempDir())
	cmd.Env = testenv.Environ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS="+f.URL, "AWS_ENDPOINT_URL_SECURITYHUB="+f.URL)
	var stderr lockedBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; stderr:\n%s", what, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the first report", func() bool { return f.Calls(awsfake.OpPutLogEvents) > 0 })
	write("splay: 0s\ninterval: 2m\nstate_dir: " + filepath.Join(dir, "state") + "\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor("the reload", func() bool { return strings.Contains(stderr.String(), `"config reloaded"`) })
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	var msgs []string
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("stderr line is not JSON: %s", sc.Text())
		}
		msgs = append(msgs, m["msg"].(string))
	}
	// The CLI runs every cycle in a worker process (agent/worker.go).
	if !slices.Contains(msgs, "worker done") || !slices.Contains(msgs, "scan done") {
		t.Errorf("no worker cycle logged: %v", msgs)
	}
	if len(msgs) == 0 || msgs[len(msgs)-1] != "ec2sec agent stopping" {
		t.Errorf("last log %v, want the stop message", msgs)
	}
	if !strings.Contains(stderr.String(), `"interval":"2m0s"`) {
		t.Error("reloaded interval not logged")
	}
}
