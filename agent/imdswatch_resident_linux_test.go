//go:build linux

package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/imdswatch"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/systemd"
	"golang.org/x/sys/unix"
)

// residentBinary is a fresh ec2sec binary and a world-readable directory around it (a
// non-root watcher runs it), removed after the test.
func residentBinary(t *testing.T) (bin, base string) {
	t.Helper()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" || os.Geteuid() != 0 {
		testenv.Missing(t, "the resident watcher loads BPF programs: Linux amd64/arm64, as root")
	}
	if testing.Short() {
		t.Skip("builds the binary")
	}
	base, err := os.MkdirTemp("", "ec2sec-resident-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	return buildBinary(t, base), base
}

// bpfObjects are the kernel ids of the BPF programs and links a process holds, read from its
// file descriptors (fdinfo), so that only this watcher's are looked for, whatever else runs.
func bpfObjects(t *testing.T, pid int) (progs []ebpf.ProgramID, links []link.ID) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		if target != "anon_inode:bpf-prog" && target != "anon_inode:bpf_link" {
			continue
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				continue
			}
			switch {
			case k == "prog_id" && target == "anon_inode:bpf-prog":
				progs = append(progs, ebpf.ProgramID(n))
			case k == "link_id":
				links = append(links, link.ID(n))
			}
		}
		f.Close()
	}
	return progs, links
}

// tracedCalls waits until strace's output file says pid exited and returns the system calls
// named in it.
func tracedCalls(t *testing.T, file string, pid int) map[string]bool {
	t.Helper()
	call := regexp.MustCompile(`^[0-9]+ +([a-z0-9_]+)\(`)
	// strace pads the pid column: "3625  +++ exited with 0 +++".
	exited := regexp.MustCompile(fmt.Sprintf(`(?m)^%d +\+\+\+ exited with `, pid))
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(file)
		if exited.Match(b) {
			called := map[string]bool{}
			for _, l := range strings.Split(string(b), "\n") {
				if m := call.FindStringSubmatch(l); m != nil {
					called[m[1]] = true
				}
			}
			return called
		}
		if time.Now().After(deadline) {
			t.Fatalf("strace's output does not say %d exited:\n%s", pid, b)
		}
	}
}

// onlyPtrace checks that the watcher pid, once it said READY, holds CAP_SYS_PTRACE alone:
// what loaded its programs is given up.
func onlyPtrace(t *testing.T, pid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		switch k {
		case "CapEff", "CapPrm":
			if want := fmt.Sprintf("%016x", uint64(1)<<unix.CAP_SYS_PTRACE); strings.TrimSpace(v) != want {
				t.Errorf("%s %s, want %s (CAP_SYS_PTRACE alone)", k, strings.TrimSpace(v), want)
			}
		case "CapInh", "CapAmb":
			if strings.TrimSpace(v) != "0000000000000000" {
				t.Errorf("%s %s, want none", k, strings.TrimSpace(v))
			}
		}
	}
}

// bpfGone waits until none of the programs and links is in the kernel any more (freeing is
// asynchronous).
func bpfGone(t *testing.T, progs []ebpf.ProgramID, links []link.ID) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		for _, id := range progs {
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				p.Close()
				left = append(left, fmt.Sprintf("program %d", id))
			}
		}
		for _, id := range links {
			if l, err := link.NewFromID(id); err == nil {
				l.Close()
				left = append(left, fmt.Sprintf("link %d", id))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still in the kernel after the watcher stopped: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slowIMDS is a fake IMDS that answers token-less requests after a pause, as a real one
// may: the watcher names a caller from /proc while it waits for its answer, and curl, which
// exits at once after it, could otherwise be gone (a zombie without exe) on a busy machine.
func slowIMDS(t *testing.T) *fakeimds.Server {
	imds := fakeimds.New(t)
	imds.Set(func(s *fakeimds.Server) {
		s.V1 = true
		s.Before = func(*http.Request) { time.Sleep(300 * time.Millisecond) }
	})
	return imds
}

// v1Curl makes a token-less request for role credentials with curl and returns curl's path.
func v1Curl(t *testing.T, imdsURL string) string {
	t.Helper()
	curl := testenv.Tool(t, "curl")
	if out, err := exec.Command(curl, "-s", "-o", "/dev/null", imdsURL+"/latest/meta-data/iam/security-credentials/web").CombinedOutput(); err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
	return curl
}

// curlIn waits until the summary in state names curl as a caller.
func curlIn(t *testing.T, state string) *imdswatch.Caller {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s, _ := imdswatch.LoadSummary(filepath.Join(state, imdswatch.SummaryFile)); s != nil {
			for _, c := range s.Callers {
				if c.Comm == "curl" {
					return c
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("curl's request is not in the resident watcher's summary")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scanWatch runs the imdswatch probe over the state dir, as the agent's scan worker does.
func scanWatch(t *testing.T, state, imdsURL string) []probes.Result {
	t.Helper()
	r, err := Scan(context.Background(), ScanOptions{Root: t.TempDir(), Config: Config{StateDir: state},
		Available: []probes.Probe{probes.IMDSWatchProbe{}}, IMDS: metadata.New(metadata.Options{Endpoint: imdsURL})})
	if err != nil {
		t.Fatal(err)
	}
	return r.Results
}

func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not exit within %s", cmd, d)
		return -1
	}
}

// TestResidentWatchBinary runs `ec2sec imds-watch --resident` as the watcher unit does, with
// real BPF and a fake IMDS on loopback: systemd is told it is ready once the programs are
// attached; curl's token-less credential fetch is in the summary, which a scan reads while
// the watcher runs (window up to now) and after it stopped on SIGTERM (window closed); a run
// daemon beside it loads nothing; and the stopped watcher leaves no program or link behind.
func TestResidentWatchBinary(t *testing.T) {
	bin, base := residentBinary(t)
	imds := slowIMDS(t)
	state := filepath.Join(base, "state")
	cfgPath := filepath.Join(base, "config.yaml")
	writeCfg(t, cfgPath, "state_dir: "+state+"\n")
	n := listenNotify(t)
	cmd := exec.Command(bin, "imds-watch", "--resident", "--config", cfgPath)
	cmd.Env = testenv.Environ("AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL, "NOTIFY_SOCKET="+n.addr)
	var logs syncBuf
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	if m := n.wait(t, 60*time.Second); !strings.Contains(m, "READY=1") || !strings.Contains(m, "STATUS=watching") {
		if strings.Contains(m, "not watching") {
			testenv.Missing(t, "BPF watcher does not load here: "+m)
		}
		t.Fatalf("first notification %q\n%s", m, logs.Bytes())
	}
	progs, links := bpfObjects(t, cmd.Process.Pid)
	if len(progs) != 5 || len(links) != 3 {
		t.Fatalf("the watcher holds %d program(s) and %d link(s), want 5 and 3 (connect4, connect6, sockops)", len(progs), len(links))
	}

	curl := v1Curl(t, imds.URL)
	if c := curlIn(t, state); c.V1Creds != 1 {
		t.Errorf("curl caller %+v", c)
	}
	// A run daemon beside it (the agent's unit, which cannot load) finds the watch held.
	cfg, _ := LoadConfig(cfgPath)
	var loads atomic.Int32
	d := &daemonWatch{getenv: os.Getenv, log: slog.New(slog.DiscardHandler), load: failingLoad(&loads, "no CAP_BPF")}
	d.ensure(cfg)
	if loads.Load() != 0 || d.rw != nil {
		t.Error("a run daemon loaded beside the resident watcher")
	}
	// The scan reads the live window: it names curl, and watches up to now.
	time.Sleep(1100 * time.Millisecond)
	var v1 int
	for _, r := range scanWatch(t, state, imds.URL) {
		if r.Check == "imds-v1-callers" && r.Status == probes.Failed && strings.Contains(r.Reason, "curl") {
			v1++
			if strings.Contains(r.Reason, "stopped") || fmt.Sprint(r.Evidence["window_seconds"]) == "0" {
				t.Errorf("live window: %q %v", r.Reason, r.Evidence["window_seconds"])
			}
		}
	}
	if v1 != 1 {
		t.Errorf("scan during the watch: %d v1 result(s) naming curl", v1)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, logs.Bytes())
	}
	if m := n.wait(t, time.Second); m != "STOPPING=1" {
		t.Errorf("notification at stop %q", m)
	}
	bpfGone(t, progs, links)
	s := summaryIn(t, state)
	if s.Running || len(s.Watching) != 1 {
		t.Errorf("summary after stop: %+v", s)
	}
	v1 = 0
	for _, r := range scanWatch(t, state, imds.URL) {
		if r.Check == "imds-v1-callers" && r.Status == probes.Failed && strings.Contains(r.Reason, curl) && strings.Contains(r.Reason, "the watcher stopped at") {
			v1++
		}
	}
	if v1 != 1 {
		t.Errorf("scan after the watch: %d v1 result(s) naming %s in a closed window", v1, curl)
	}
}

// unitCaps are the capabilities the watcher's unit grants, for setpriv ("+bpf,+perfmon").
func unitCaps(t *testing.T) []string {
	t.Helper()
	for _, l := range strings.Split(systemd.IMDSWatchUnit, "\n") {
		if v, ok := strings.CutPrefix(l, "AmbientCapabilities="); ok {
			var caps []string
			for _, c := range strings.Fields(v) {
				caps = append(caps, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
			}
			return caps
		}
	}
	t.Fatal("the watcher's unit grants no ambient capabilities")
	return nil
}

// TestResidentWatchUnitPrivileges runs the resident watcher as the watcher's unit would: a
// non-root user holding exactly the unit's capabilities (parsed from the unit), with no new
// privileges, /proc showing processes only and only those it may ptrace (ProcSubset=pid,
// ProtectProc=ptraceable), the cgroup and /sys read-only, home directories hidden. With
// every capability it names curl (root's process) by executable; without CAP_SYS_PTRACE it
// cannot; without any of the others it cannot load, says why and exits 0. What systemd adds
// beyond this (seccomp, address families) is checked on the unit's text (systemd package).
func TestResidentWatchUnitPrivileges(t *testing.T) {
	bin, base := residentBinary(t)
	unshare, setpriv, mount, umount := testenv.Tool(t, "unshare"), testenv.Tool(t, "setpriv"), testenv.Tool(t, "mount"), testenv.Tool(t, "umount")
	cg := ""
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if pre, post, ok := strings.Cut(l, " - "); ok && strings.HasPrefix(post, "cgroup2 ") {
				if f := strings.Fields(pre); len(f) > 4 && f[3] == "/" {
					cg = f[4]
				}
			}
		}
	}
	if cg == "" {
		testenv.Missing(t, "no cgroup2 mount here")
	}
	imds := slowIMDS(t)
	const uid = 64123 // in systemd's range of dynamic users
	caps := unitCaps(t)
	if len(caps) != 4 {
		t.Fatalf("unit capabilities %v", caps)
	}
	without := func(drop string) string {
		var s []string
		for _, c := range caps {
			if c != drop {
				s = append(s, "+"+c)
			}
		}
		return "-all," + strings.Join(s, ",")
	}
	// run starts the watcher holding capset, as the watcher's unit would: a non-root user with
	// capset as its ambient capabilities. systemd219 runs it instead as systemd 219 would under
	// the drop-in (root, the bounding set alone limiting it) on a host with no cgroup2 mount (a
	// cgroup v1 host, as Amazon Linux 2 is), traced (strace -D: the tracer is a detached
	// grandchild, the watcher keeps this pid) into strace.out beside the state dir.
	run := func(t *testing.T, capset string, systemd219 bool) (state string, n *notifySocket, cmd *exec.Cmd) {
		t.Helper()
		dir, err := os.MkdirTemp(base, "case-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o755)
		state = filepath.Join(dir, "state")
		if err := os.Mkdir(state, 0o700); err != nil {
			t.Fatal(err)
		}
		owner := uid
		if systemd219 {
			owner = 0
		}
		if err := os.Chown(state, owner, owner); err != nil {
			t.Fatal(err)
		}
		cfgPath := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfgPath, []byte("state_dir: "+state+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		n = listenNotify(t)
		cgroup := mount + " -o bind,remount,ro " + cg
		watch := fmt.Sprintf(`exec %s --reuid=%d --regid=%d --clear-groups --no-new-privs --inh-caps=%s --ambient-caps=%s --bounding-set=%s -- %s imds-watch --resident --config %s`,
			setpriv, uid, uid, capset, capset, capset, bin, cfgPath)
		if systemd219 {
			cgroup = umount + " " + cg
			watch = fmt.Sprintf(`exec %s -D -f -q -o %s %s --no-new-privs --inh-caps=-all --bounding-set=%s -- %s imds-watch --resident --config %s`,
				testenv.Tool(t, "strace"), filepath.Join(dir, "strace.out"), setpriv, capset, bin, cfgPath)
		}
		script := []string{
			"set -e",
			mount + " -t proc -o subset=pid,hidepid=ptraceable proc /proc",
			cgroup,
			mount + " -o bind,remount,ro /sys",
			mount + " -t tmpfs tmpfs /home",
			mount + " -t tmpfs tmpfs /root",
			watch,
		}
		cmd = exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", strings.Join(script, "\n"))
		cmd.Env = testenv.Environ("AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL, "NOTIFY_SOCKET="+n.addr)
		var logs syncBuf
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		select {
		case m := <-n.msgs:
			if !strings.Contains(m, "READY=1") {
				t.Fatalf("first notification %q", m)
			}
			n.msgs <- m // for the case to read
		case <-time.After(60 * time.Second):
			t.Fatalf("no READY from the watcher\n%s", logs.Bytes())
		}
		return state, n, cmd
	}

	t.Run("unit-capabilities", func(t *testing.T) {
		state, n, cmd := run(t, without(""), false)
		if m := n.wait(t, time.Second); !strings.Contains(m, "STATUS=watching") {
			t.Fatalf("with the unit's capabilities: %q", m)
		}
		onlyPtrace(t, cmd.Process.Pid)
		curl := v1Curl(t, imds.URL)
		c := curlIn(t, state)
		if c.Exe != curl || c.User != "root" || c.Netns != "host" || c.Gone || len(c.Parents) == 0 {
			t.Errorf("with the unit's capabilities, curl is named %+v", c)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if code := waitExit(t, cmd, 15*time.Second); code != 0 {
			t.Errorf("exit %d", code)
		}
	})
	// systemd 219 (Amazon Linux 2): root bounded to the drop-in's capabilities less those a
	// systemd that old cannot name (CAP_PERFMON, CAP_BPF and later), on a cgroup v1 host.
	t.Run("systemd-219-cgroup-v1", func(t *testing.T) {
		var bset []string
		for _, l := range strings.Split(systemd.DropIn(systemd.IMDSWatchName, 219), "\n") {
			if v, ok := strings.CutPrefix(l, "CapabilityBoundingSet="); ok {
				for _, c := range strings.Fields(v) {
					if c != "CAP_PERFMON" && c != "CAP_BPF" && c != "CAP_CHECKPOINT_RESTORE" {
						bset = append(bset, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
					}
				}
			}
		}
		state, n, cmd := run(t, "-all,"+strings.Join(bset, ","), true)
		if m := n.wait(t, time.Second); !strings.Contains(m, "STATUS=watching") {
			t.Fatalf("under the systemd 219 drop-in %v on a cgroup v1 host: %q", bset, m)
		}
		onlyPtrace(t, cmd.Process.Pid)
		curl := v1Curl(t, imds.URL)
		if c := curlIn(t, state); c.Exe != curl || c.Gone {
			t.Errorf("under the systemd 219 drop-in, curl is named %+v", c)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if code := waitExit(t, cmd, 15*time.Second); code != 0 {
			t.Errorf("exit %d", code)
		}
		// systemd 219 filters by the drop-in's denials: none may be a call the watcher makes.
		dropIn := systemd.DropIn(systemd.IMDSWatchName, 219)
		denied := map[string]bool{}
		for _, l := range strings.Split(dropIn, "\n") {
			if v, ok := strings.CutPrefix(l, "SystemCallFilter=~"); ok {
				for _, c := range strings.Fields(v) {
					denied[c] = true
				}
			}
		}
		called := tracedCalls(t, filepath.Join(filepath.Dir(state), "strace.out"), cmd.Process.Pid)
		if !called["mount"] || !called["bpf"] {
			t.Fatalf("the trace holds no mount or bpf call: %v", called)
		}
		for c := range called {
			if denied[c] {
				t.Errorf("the watcher calls %s, which the systemd 219 drop-in denies", c)
			}
		}
	})
	t.Run("without-sys_ptrace", func(t *testing.T) {
		state, n, cmd := run(t, without("sys_ptrace"), false)
		if m := n.wait(t, time.Second); !strings.Contains(m, "STATUS=watching") {
			t.Fatalf("without CAP_SYS_PTRACE: %q", m)
		}
		v1Curl(t, imds.URL)
		if c := curlIn(t, state); c.Exe != "" {
			t.Errorf("without CAP_SYS_PTRACE the watcher still read curl's executable (%+v): the capability is not needed", c)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		waitExit(t, cmd, 15*time.Second)
	})
	for _, c := range []string{"bpf", "perfmon", "net_admin"} {
		t.Run("without-"+c, func(t *testing.T) {
			state, n, cmd := run(t, without(c), false)
			if m := n.wait(t, time.Second); !strings.Contains(m, "STATUS=not watching: ") {
				t.Errorf("without CAP_%s the watcher loaded (%q): the capability is not needed", strings.ToUpper(c), m)
			}
			if code := waitExit(t, cmd, 15*time.Second); code != 0 {
				t.Errorf("exit %d, want 0 (no restart loop)", code)
			}
			if s := summaryIn(t, state); s.Unavailable == "" || s.Running {
				t.Errorf("summary %+v: want the reason", s)
			}
		})
	}
}
