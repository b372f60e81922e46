package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/agent/state"
	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

const diskFullChildEnv = "EC2SEC_DISKFULL_CHILD_DIR"

// TestSpoolDiskFull runs TestSpoolDiskFullChild in a private mount namespace, where it
// mounts a 256 KiB tmpfs for the state dir: the disk fills up long before the spool's 1 MiB
// bound. Mounting needs root (CAP_SYS_ADMIN); without it the test is skipped, also in CI,
// since that is a missing privilege, not a missing peer.
func TestSpoolDiskFull(t *testing.T) {
	testenv.System(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs in a private mount namespace")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolDiskFullChild$", "-test.count=1", "-test.v")
	cmd.Env = testenv.Environ(diskFullChildEnv + "=" + dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // Go makes / private in it
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if errors.Is(err, syscall.EPERM) || strings.Contains(out.String(), "SKIP-NO-MOUNT") {
		t.Skipf("cannot mount a tmpfs here (missing privilege): %v\n%s", err, out.String())
	}
	t.Logf("child:\n%s", out.String())
	if err != nil {
		t.Fatalf("child failed: %v", err)
	}
	if !strings.Contains(out.String(), "--- PASS: TestSpoolDiskFullChild") {
		t.Fatal("child did not run")
	}
}

// TestSpoolDiskFullChild is the child of TestSpoolDiskFull: with the endpoints down, reports
// fill a 256 KiB disk. A report that does not fit fails cleanly (no torn batch, no temp file
// left, the state as it was), the agent carries on, and once the endpoints are back
// everything is delivered: Security Hub ends with every finding's final state and every
// spooled log event arrived or was counted as dropped.
func TestSpoolDiskFullChild(t *testing.T) {
	testenv.System(t)
	dir := os.Getenv(diskFullChildEnv)
	if dir == "" {
		t.Skip("helper process for TestSpoolDiskFull")
	}
	mnt := filepath.Join(dir, "tmpfs")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Skipf("SKIP-NO-MOUNT: %v", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	f := awsfake.New(t)
	useFake(t, f)
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(mnt, "state")
	cfg.Spool.MaxMB = 1 // more than the disk holds
	r, err := NewReporter(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)), ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger()
	t0 := time.Now().Add(-time.Hour)
	f.Outage(awsfake.Reset)
	var full int
	for i := range 8 {
		// 40 results with 1 KB of evidence: ~60 KB of events, ~80 KB of findings and a
		// ~50 KB state per report.
		err := l.spool(t, r, chaosReport(chaosHost, i, 40, 1000, t0.Add(time.Duration(i)*time.Minute)))
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("report %d: %v, want ENOSPC or success", i, err)
			}
			full++
		}
		if _, err := l.flush(r); err == nil {
			t.Fatal("flush succeeded with the endpoints down")
		}
		size := l.measure(t, cfg.StateDir)
		var sfs syscall.Statfs_t
		syscall.Statfs(mnt, &sfs)
		t.Logf("report %d: spool err %v; spool %d bytes, %d KiB free", i, err, size, sfs.Bavail*uint64(sfs.Bsize)>>10)
		checkSpoolWhole(t, cfg.StateDir)
		if _, err := state.Load(filepath.Join(cfg.StateDir, "state.json")); err != nil {
			t.Fatalf("state unreadable after a full disk: %v", err)
		}
	}
	if full == 0 {
		t.Fatal("the disk never filled up: the test did not test")
	}
	f.Outage(0)
	if fs, err := l.flush(r); err != nil || sum(fs.Pending) != 0 {
		t.Fatalf("flush after the outage: %v %+v", err, fs)
	}
	// The next report, on an emptied disk, brings Security Hub up to date.
	if err := l.spool(t, r, chaosReport(chaosHost, 20, 40, 1000, t0.Add(20*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if fs, err := l.flush(r); err != nil || sum(fs.Pending) != 0 {
		t.Fatalf("last flush: %v %+v", err, fs)
	}
	l.reconcileLogs(t, f, chaosHost, 0)
	n := checkHubMatchesState(t, f, cfg.StateDir)
	checkHubMatchesReport(t, f, l)
	if d := duplicateVersions(f); d > 0 {
		t.Errorf("%d finding versions imported twice", d)
	}
	if v := f.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
	t.Logf("%d of 9 reports did not fit on the disk; %d findings consistent", full, n)
}

// checkSpoolWhole: no temp file left behind, and every batch file is whole JSON.
func checkSpoolWhole(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(dir, "spool"))
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, "spool", e.Name()))
		switch {
		case strings.HasSuffix(e.Name(), ".tmp"):
			t.Errorf("temp file %s left behind", e.Name())
		case err != nil || !json.Valid(b):
			t.Errorf("torn spool batch %s", e.Name())
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(m) > 0 {
		t.Errorf("temp files left in the state dir: %v", m)
	}
}
