//go:build unix

package agent

// A hostile local user against what the agent keeps and reads of its own: the state dir and
// its files, keys, config and --output. The attacker is uid 65534 (nobody); tests that hand
// them files need root to chown and skip without it. What a user writes into their own home
// to exhaust the scan is a hostile host: TestHostileUserExhaustion in hostile_host_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/agent/spool"
	"github.com/ec2sec/ec2sec/agent/state"
	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

const attacker = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to hand files to another user")
	}
}

// give writes body to path owned by the attacker with mode.
func give(t *testing.T, path string, body []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, body, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, attacker, attacker); err != nil {
		t.Fatal(err)
	}
}

// attackerStateDir is a state dir the attacker made before the agent's first run: their
// fingerprint key, a planted findings batch, and a lock symlink pointing where they want a
// file created. It returns the dir and that target.
func attackerStateDir(t *testing.T) (dir, target string) {
	t.Helper()
	base := t.TempDir()
	dir, target = filepath.Join(base, "state"), filepath.Join(base, "created-through-lock")
	os.MkdirAll(filepath.Join(dir, "spool"), 0o777)
	give(t, filepath.Join(dir, fingerprintKeyName), bytes.Repeat([]byte{'k'}, fingerprintKeySize), 0o644)
	batch, _ := json.Marshal(spool.Batch{Kind: spool.Findings, Items: []json.RawMessage{json.RawMessage(`{"Id":"planted"}`)}})
	give(t, filepath.Join(dir, "spool", "00000000000000000001-findings.json"), batch, 0o644)
	if err := os.Symlink(target, filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(dir, "spool"), dir} {
		os.Lchown(filepath.Join(dir, "lock"), attacker, attacker)
		if err := os.Chown(d, attacker, attacker); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o777)
	}
	return dir, target
}

// TestAttackerStateDirRefused: a state dir another user owns is refused, not adopted. `scan
// --report` exits 3 saying so; nothing is delivered (not the planted batch), no file is
// created through the lock symlink, and secrets are not fingerprinted with their key.
func TestAttackerStateDirRefused(t *testing.T) {
	testenv.System(t)
	needRoot(t)
	dir, target := attackerStateDir(t)
	f := awsfake.New(t)
	useFake(t, f)
	imds := fakeIMDS(t, "i-0aaaaaaaaaaaaaaa1")
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	writeCfg(t, cfgPath, "state_dir: "+dir+"\n")
	var out, errb bytes.Buffer
	c := ScanCommand{Report: true, Stdout: &out, Stderr: &errb, ConfigPath: cfgPath, Root: t.TempDir(), Proc: t.TempDir(), ProcSet: true,
		ScanOptions: ScanOptions{IMDS: metadata.New(metadata.Options{Endpoint: imds.URL})}, Reporter: ReporterOptions{AWS: fastAWS()}}
	if code := c.Run(context.Background()); code != ExitNoScan {
		t.Errorf("scan --report with an attacker's state dir: exit %d, want %d\n%s", code, ExitNoScan, errb.String())
	}
	if !strings.Contains(errb.String(), "refusing") {
		t.Errorf("stderr does not say the state dir was refused:\n%s", errb.String())
	}
	if n := f.Calls(awsfake.OpBatchImportFindings) + f.Calls(awsfake.OpPutLogEvents); n != 0 {
		t.Errorf("%d deliveries from an attacker's state dir", n)
	}
	if _, err := os.Lstat(target); err == nil {
		t.Error("a file was created through the attacker's lock symlink")
	}
	if fi, _ := os.Stat(dir); fi.Sys().(*syscall.Stat_t).Uid != attacker || fi.Mode().Perm() != 0o777 {
		t.Errorf("the agent changed the attacker's dir (mode %v): it must leave it alone", fi.Mode().Perm())
	}
	// The fingerprint key is not the attacker's: a key they chose lets them brute-force.
	cfg := DefaultConfig()
	cfg.StateDir = dir
	k, err := LoadFingerprintKey(cfg, nil)
	if err != nil || bytes.Equal(k, bytes.Repeat([]byte{'k'}, fingerprintKeySize)) {
		t.Errorf("fingerprint key from an attacker's state dir: %v (err %v)", k, err)
	}
	// `run`: a delivery worker logs the refusal and delivers nothing.
	var logs bytes.Buffer
	req, _ := json.Marshal(workerRequest{Mode: workerFlush, Config: cfg, Budget: 5 * time.Second})
	var res bytes.Buffer
	w := WorkerCommand{Stdin: bytes.NewReader(append(req, '\n')), Stdout: &res, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	if code := w.Run(context.Background()); code != ExitOK {
		t.Errorf("worker exit %d", code)
	}
	if !strings.Contains(res.String(), `"no_reporter":true`) || !strings.Contains(logs.String(), "refusing") {
		t.Errorf("run's worker did not refuse the state dir: result %s log %s", res.String(), logs.String())
	}
	if n := f.Calls(awsfake.OpBatchImportFindings); n != 0 {
		t.Errorf("the worker delivered %d batches from an attacker's state dir", n)
	}
}

// TestStateFileOfAnotherUserRefused: inside the agent's own state dir, a file another user
// owns (a planted spool batch, state, lock or key, via a hard link or a leftover) is refused.
func TestStateFileOfAnotherUserRefused(t *testing.T) {
	testenv.System(t)
	needRoot(t)
	cfg := testConfig(t)
	if err := privateDir(cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(filepath.Join(cfg.StateDir, "spool"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	name := "00000000000000000007-findings.json"
	batch, _ := json.Marshal(spool.Batch{Kind: spool.Findings, Items: []json.RawMessage{json.RawMessage(`{"Id":"planted"}`)}})
	give(t, filepath.Join(sp.Dir(), name), batch, 0o600)
	if _, err := sp.Read(name); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("a batch another user owns was read: %v", err)
	}
	give(t, filepath.Join(cfg.StateDir, "state.json"), []byte(`{"version":1,"entries":{}}`), 0o600)
	if _, err := state.Load(filepath.Join(cfg.StateDir, "state.json")); err == nil {
		t.Error("a state file another user owns was loaded")
	}
	give(t, filepath.Join(cfg.StateDir, "lock"), nil, 0o600)
	if l, err := spool.Acquire(context.Background(), filepath.Join(cfg.StateDir, "lock")); err == nil {
		l.Release()
		t.Error("a lock file another user owns was used")
	}
}

// TestStateFilesNeverHang: a FIFO as fingerprint.key, fleet key, state.json or lock is
// refused at once (O_NONBLOCK, then fstat), never waited on.
func TestStateFilesNeverHang(t *testing.T) {
	testenv.System(t)
	cfg := testConfig(t)
	if err := privateDir(cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	fifo := func(name string) string {
		p := filepath.Join(cfg.StateDir, name)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	within := func(what, p string, f func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			// Unblock the open (old code) so the test binary can exit.
			if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			if r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
				r.Close()
			}
			t.Errorf("%s: blocked on a FIFO", what)
			return errors.New("blocked")
		}
	}
	key := fifo(fingerprintKeyName)
	var k []byte
	if err := within("fingerprint.key", key, func() (err error) { k, err = LoadFingerprintKey(cfg, nil); return err }); err != nil || len(k) != fingerprintKeySize {
		t.Errorf("fingerprint.key a FIFO: key %d bytes, %v; want an ephemeral key", len(k), err)
	}
	fleet := fifo("fleet.key")
	fc := cfg
	fc.FingerprintKeyFile = fleet
	if err := within("fleet key", fleet, func() error { _, err := LoadFingerprintKey(fc, nil); return err }); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("fleet key a FIFO: %v, want not a regular file", err)
	}
	st := fifo("state.json")
	if err := within("state.json", st, func() error { _, err := state.Load(st); return err }); err == nil {
		t.Error("state.json a FIFO was loaded")
	}
	lock := fifo("lock")
	if err := within("lock", lock, func() error {
		l, err := spool.Acquire(context.Background(), lock)
		l.Release()
		return err
	}); err == nil {
		t.Error("a FIFO was taken as the lock file")
	}
}

// TestConfigStrictModes: as sshd's StrictModes, a config file must be owned by root or the
// agent's user and not group- or world-writable, and is not read through a symlink.
func TestConfigStrictModes(t *testing.T) {
	testenv.System(t)
	needRoot(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeCfg(t, good, "region: us-east-1\n")
	os.Chmod(good, 0o644)
	if _, err := LoadConfig(good); err != nil {
		t.Fatalf("a root-owned 0644 config: %v", err)
	}
	other := filepath.Join(dir, "other.yaml")
	give(t, other, []byte("region: us-east-1\n"), 0o644)
	group := filepath.Join(dir, "group.yaml")
	writeCfg(t, group, "region: us-east-1\n")
	os.Chmod(group, 0o664)
	link := filepath.Join(dir, "link.yaml")
	os.Symlink(other, link)
	rootLink := filepath.Join(dir, "root-link.yaml")
	os.Symlink(good, rootLink)
	for path, want := range map[string]string{other: "owned by uid", group: "group- or world-writable", link: "symlink", rootLink: "symlink"} {
		if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a refusal saying %q", filepath.Base(path), err, want)
		}
	}
}

// TestOutputNeverThroughSymlink: --output replaces what is at the path (a planted symlink, a
// planted 0666 file) with a new file, 0600 unless --output-mode asks otherwise.
func TestOutputNeverThroughSymlink(t *testing.T) {
	testenv.System(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("precious"), 0o644)
	link := filepath.Join(dir, "report-link.json")
	os.Symlink(victim, link)
	planted := filepath.Join(dir, "report-planted.json")
	os.WriteFile(planted, []byte("x"), 0o666)
	os.Chmod(planted, 0o666)
	run := func(out string, mode fs.FileMode) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		c := ScanCommand{Output: out, OutputMode: mode, Format: "json", Probes: []string{"network"}, Stdout: &stdout, Stderr: &stderr,
			ConfigPath: writeConfig(t, "state_dir: "+filepath.Join(t.TempDir(), "s")+"\n", 0o600), Root: t.TempDir(), Proc: "", ProcSet: true}
		if code := c.Run(context.Background()); code != ExitOK {
			t.Fatalf("scan --output %s: exit %d\n%s", out, code, stderr.String())
		}
	}
	run(link, 0)
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("--output wrote through a symlink into its target: %q", b)
	}
	run(planted, 0)
	for _, p := range []string{link, planted} {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want a regular file 0600", filepath.Base(p), fi.Mode(), err)
		}
	}
	asked := filepath.Join(dir, "asked.json")
	run(asked, 0o640)
	if fi, _ := os.Stat(asked); fi.Mode().Perm() != 0o640 {
		t.Errorf("--output-mode 0640 gave %v", fi.Mode().Perm())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(m) != 0 {
		t.Errorf("temp files left: %v", m)
	}
}
