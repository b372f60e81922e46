//go:build linux

package agent

// A compromised agent is not root (issue 15, item 4): a worker confined as the CLI's are
// cannot write another process's memory (/proc/<pid>/mem, process_vm_writev), trace it, or
// write outside its state dir, though it runs as root with every capability here; unconfined,
// the same process can do all of it (which proves the test can fail).

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func init() {
	// The test binary as the attacker: a worker that was (or was not) confined.
	if mode := os.Getenv("EC2SEC_CONFINE_HELPER"); mode != "" {
		if mode == "nolandlock" {
			landlockABI = func() (int, error) { return 0, syscall.ENOSYS }
		}
		os.Exit(confineHelper(mode != "open"))
	}
}

func errName(err error) string {
	if err == nil {
		return "ok"
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return unix.ErrnoName(en)
	}
	return err.Error()
}

func confineHelper(confined bool) int {
	pid, _ := strconv.Atoi(os.Getenv("EC2SEC_VICTIM"))
	state, outside := os.Getenv("EC2SEC_STATE"), os.Getenv("EC2SEC_OUTSIDE")
	out := map[string]any{}
	if confined {
		out["confinement"] = confineWorker(state, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	}
	if f, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/mem", os.O_RDWR, 0); err != nil {
		out["mem_write"] = errName(err)
	} else {
		f.Close()
		out["mem_write"] = "ok"
	}
	_, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	out["read_environ"] = errName(err)
	if f, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/mem", os.O_RDONLY, 0); err != nil {
		out["mem_read_open"] = errName(err)
	} else {
		f.Close()
		out["mem_read_open"] = "ok"
	}
	buf := make([]byte, 8)
	local := []unix.Iovec{{Base: &buf[0], Len: 8}}
	remote := []unix.RemoteIovec{{Base: 0, Len: 8}} // address 0: EFAULT when the call runs at all
	_, err = unix.ProcessVMWritev(pid, local, remote, 0)
	out["process_vm_writev"] = errName(err)
	_, err = unix.ProcessVMReadv(pid, local, remote, 0)
	out["process_vm_readv"] = errName(err)
	_, _, en := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(pid), 0, 0, 0, 0)
	out["ptrace"] = errName(map[bool]error{true: nil, false: en}[en == 0])
	out["write_outside"] = errName(os.WriteFile(outside, []byte("x"), 0o600))
	out["write_state"] = errName(os.WriteFile(filepath.Join(state, "probe"), []byte("x"), 0o600))
	// A static program planted in the state dir (by the test, as a worker could write one).
	// Its output goes to stderr: os/exec would open /dev/null for writing, which Landlock
	// refuses on its own.
	planted := exec.Command(filepath.Join(state, "planted"))
	planted.Stdout, planted.Stderr = os.Stderr, os.Stderr
	out["exec_state"] = errName(planted.Run())
	_, err = os.ReadFile("/proc/self/status")
	out["read"] = errName(err)
	if confined {
		out["drop"] = errName(dropCapabilities())
		st, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(st), "\n") {
			if k, v, ok := strings.Cut(l, ":\t"); ok && strings.HasPrefix(k, "Cap") {
				out[k] = v
			}
		}
	}
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

func runConfineHelper(t *testing.T, confined bool, victim int, state, outside string) map[string]any {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	mode := map[bool]string{true: "confined", false: "open"}[confined]
	cmd.Env = append(os.Environ(), "EC2SEC_CONFINE_HELPER="+mode, "EC2SEC_VICTIM="+strconv.Itoa(victim), "EC2SEC_STATE="+state, "EC2SEC_OUTSIDE="+outside)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s helper: %v\n%s", mode, err, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("%s helper: %v\n%s\n%s", mode, err, stdout.String(), stderr.String())
	}
	t.Logf("%s: %v", mode, res)
	return res
}

func TestConfinedWorkerCannotTouchOtherProcesses(t *testing.T) {
	testenv.System(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: the attacks need CAP_SYS_PTRACE to succeed unconfined")
	}
	if abi, _ := llsysABI(); abi < 1 {
		t.Skip("no Landlock on this kernel") // the log-line degrade is TestConfineWithoutLandlockSaysSo
	}
	victim := exec.Command("sleep", "300")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
	dir := t.TempDir()
	state, outside := filepath.Join(dir, "state"), filepath.Join(dir, "outside")

	planted := buildPlanted(t)
	plantProgram(t, planted, state+"-open")
	open := runConfineHelper(t, false, victim.Process.Pid, state+"-open", outside+"-open")
	for k, want := range map[string]string{"exec_state": "ok", "mem_write": "ok", "mem_read_open": "ok", "read_environ": "ok", "process_vm_writev": "EFAULT", "process_vm_readv": "EFAULT", "ptrace": "ok", "write_outside": "ok"} {
		if open[k] != want {
			t.Errorf("unconfined %s = %v, want %s: the attack must work without confinement, or the test proves nothing", k, open[k], want)
		}
	}
	plantProgram(t, planted, state)
	conf := runConfineHelper(t, true, victim.Process.Pid, state, outside)
	for k, want := range map[string]string{
		"exec_state": "EACCES",
		"mem_write":  "EACCES", "process_vm_writev": "EPERM", "process_vm_readv": "EPERM", "ptrace": "EPERM",
		"write_outside": "EACCES", "write_state": "ok", "read": "ok", "drop": "ok",
		"CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapAmb": "0000000000000000",
		// What the scan needs still works confined: another process's environment (a
		// PTRACE_MODE_READ access). /proc/<pid>/mem even for reading needs
		// PTRACE_MODE_ATTACH, which Landlock's ptrace scoping refuses (mem_read_open).
		"read_environ": "ok", "mem_read_open": "EACCES",
	} {
		if conf[k] != want {
			t.Errorf("confined %s = %v, want %s", k, conf[k], want)
		}
	}
	if c, _ := conf["confinement"].(map[string]any); c == nil || c["Seccomp"] != true || c["LandlockABI"].(float64) < 1 {
		t.Errorf("confinement %v: want Landlock and seccomp", conf["confinement"])
	}
	if _, err := os.Stat(outside); err == nil {
		t.Error("the confined worker wrote outside its state dir")
	}
}

// buildPlanted builds a static program that only exits and returns its path.
func buildPlanted(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src, out := filepath.Join(dir, "main.go"), filepath.Join(dir, "planted")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Tool(t, "go"), "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the planted program: %v\n%s", err, b)
	}
	return out
}

// plantProgram makes dir (0700) and copies the program into dir/planted, executable.
func plantProgram(t *testing.T, program, dir string) {
	t.Helper()
	b, err := os.ReadFile(program)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "planted"), b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func llsysABI() (int, error) {
	r, _, en := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1) // LANDLOCK_CREATE_RULESET_VERSION
	if en != 0 {
		return 0, en
	}
	return int(r), nil
}

// TestConfineWithoutLandlockSaysSo: on a kernel without Landlock the worker still installs
// its seccomp filter and says, in a warning, that it is not confined to its state dir.
func TestConfineWithoutLandlockSaysSo(t *testing.T) {
	testenv.System(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EC2SEC_CONFINE_HELPER=nolandlock", "EC2SEC_STATE="+filepath.Join(t.TempDir(), "state"), "EC2SEC_OUTSIDE="+filepath.Join(t.TempDir(), "outside"), "EC2SEC_VICTIM=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Landlock is not available on this kernel") || !strings.Contains(stderr.String(), `"level":"WARN"`) {
		t.Errorf("no warning that Landlock is missing:\n%s", stderr.String())
	}
	var res map[string]any
	json.Unmarshal(stdout.Bytes(), &res)
	if c, _ := res["confinement"].(map[string]any); c == nil || c["Seccomp"] != true || c["LandlockABI"].(float64) != 0 {
		t.Errorf("confinement %v: want seccomp without Landlock", res["confinement"])
	}
	if res["write_outside"] != "ok" || res["process_vm_writev"] != "EPERM" {
		t.Errorf("without Landlock: write_outside %v (want ok: nothing else stops it), process_vm_writev %v (want EPERM)", res["write_outside"], res["process_vm_writev"])
	}
}
