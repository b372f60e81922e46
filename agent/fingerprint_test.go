package agent

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestHostKeyCreatedOnceAndKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "ec2sec")
	cfg := DefaultConfig()
	cfg.StateDir = dir
	var keys [8][]byte
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := LoadFingerprintKey(cfg, nil)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) || len(k) != fingerprintKeySize {
			t.Fatalf("concurrent first scans got different keys")
		}
	}
	again, _ := LoadFingerprintKey(cfg, nil)
	if !bytes.Equal(again, keys[0]) {
		t.Fatal("key not kept between runs")
	}
	if runtime.GOOS == "windows" {
		return
	}
	fi, err := os.Stat(filepath.Join(dir, fingerprintKeyName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v", di.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("leftover temp files: %v", entries)
	}
}

func TestFleetKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "fleet.key")
	os.WriteFile(p, []byte("0123456789abcdef-fleet\n"), 0o600)
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.FingerprintKeyFile = p
	k, err := LoadFingerprintKey(cfg, nil)
	if err != nil || string(k) != "0123456789abcdef-fleet" {
		t.Fatalf("%q %v", k, err)
	}
	if _, err := os.Stat(cfg.StateDir); err == nil {
		t.Error("a fleet key must not create a host key")
	}
	os.WriteFile(p, []byte("short"), 0o600)
	if _, err := LoadFingerprintKey(cfg, nil); err == nil {
		t.Error("a short fleet key was accepted")
	}
	cfg.FingerprintKeyFile = filepath.Join(dir, "missing")
	if _, err := LoadFingerprintKey(cfg, nil); err == nil {
		t.Error("a missing fleet key was accepted")
	}
}

func TestEphemeralKeyWhenStateDirUnusable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(file, "state") // under a regular file: cannot be created
	var log bytes.Buffer
	k1, err := LoadFingerprintKey(cfg, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil || len(k1) != fingerprintKeySize {
		t.Fatal(err)
	}
	k2, _ := LoadFingerprintKey(cfg, nil)
	if bytes.Equal(k1, k2) {
		t.Error("ephemeral keys repeat")
	}
	if !strings.Contains(log.String(), "level=INFO") || !strings.Contains(log.String(), "ephemeral") {
		t.Errorf("log: %s", log.String())
	}
}

func TestConfigFingerprintKeyFile(t *testing.T) {
	var cfg Config = DefaultConfig()
	if err := parseConfig([]byte("fingerprint_key_file: /etc/ec2sec/fleet.key\n"), &cfg); err != nil || cfg.FingerprintKeyFile != "/etc/ec2sec/fleet.key" {
		t.Fatalf("%v %q", err, cfg.FingerprintKeyFile)
	}
}
