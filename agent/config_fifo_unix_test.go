//go:build unix

package agent

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLoadConfigFIFO: a FIFO given as the config is refused at once, not opened (which would
// wait for a writer forever, deaf to SIGTERM).
func TestLoadConfigFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := LoadConfig(p); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("got %v, want not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		os.WriteFile(p, nil, 0o600) // unblock the open so the test binary can exit
		t.Fatal("LoadConfig blocked on a FIFO")
	}
}
