//go:build linux && (amd64 || arm64)

package imdswatch

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

// needBPF skips (fails under CI=true) where the watcher cannot load: not root, or a kernel
// without the hooks.
func needBPF(t *testing.T, o Options) *Watcher {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "the IMDS watcher tests load BPF programs: run as root")
	}
	w, err := Load(o)
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("BPF watcher does not load here: %v", err))
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestProgramsLoad: every program passes the verifier and attaches (CI runs it as root).
func TestProgramsLoad(t *testing.T) {
	w := needBPF(t, Options{})
	if w.Cgroup() == "" {
		t.Fatal("no cgroup")
	}
	st, err := w.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Read(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close = %v, want ErrClosed", err)
	}
}

// TestLoadFailureIsNotAvailable: a host without the hooks (here: no cgroup v2 where we are
// told to attach) is ErrNotAvailable with the reason, and nothing stays loaded.
func TestLoadFailureIsNotAvailable(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root")
	}
	_, err := Load(Options{Cgroup: t.TempDir()}) // a plain directory: attaching fails
	if !errors.Is(err, ErrNotAvailable) || !strings.Contains(err.Error(), "attach") {
		t.Fatalf("Load on a non-cgroup dir = %v, want ErrNotAvailable naming the attach", err)
	}
	_, err = cgroup2Root(filepath.Join(t.TempDir(), "none"))
	if err == nil {
		t.Fatal("cgroup2Root of a missing mountinfo succeeded")
	}
}

type collector struct {
	mu  sync.Mutex
	evs []Event
	ids []Identity
}

func (c *collector) add(e Event, id Identity) {
	c.mu.Lock()
	c.evs = append(c.evs, e)
	c.ids = append(c.ids, id)
	c.mu.Unlock()
}

// waitCount waits until n events have come in all, or d has passed.
func (c *collector) waitCount(n int, d time.Duration) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c.mu.Lock()
		got := len(c.evs)
		c.mu.Unlock()
		if got >= n {
			return
		}
	}
}

// wait returns the events of pid once n have come.
func (c *collector) wait(t *testing.T, pid int, n int) ([]Event, []Identity) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		var evs []Event
		var ids []Identity
		for i, e := range c.evs {
			if int(e.SendTgid) == pid {
				evs, ids = append(evs, e), append(ids, c.ids[i])
			}
		}
		c.mu.Unlock()
		if len(evs) >= n {
			return evs, ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: %d event(s), want %d", pid, len(evs), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return cmd.Process.Pid
}

func helperCmd(t *testing.T, mode, url string, prefix ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append(prefix, exe)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "IMDSWATCH_HELPER="+mode, "IMDSWATCH_URL="+url)
	return cmd
}

// TestClassifyAndAttribute makes token, v2, v1 and credential requests from child processes
// (this test binary and curl) to a fake IMDS on loopback and checks what the watcher says
// about each: kind, credentials, pid, executable, user, network namespace.
func TestClassifyAndAttribute(t *testing.T) {
	var col collector
	// The fake answers a request only once the watcher has reported it, as a real IMDS
	// across the network nearly always does. Answered at loopback speed, a caller (curl)
	// can exit before its /proc entry is read, and what the test checks would be a race.
	var asked atomic.Int32
	imds := fakeimds.New(t)
	imds.Set(func(s *fakeimds.Server) {
		s.V1 = true
		s.Before = func(*http.Request) { col.waitCount(int(asked.Add(1)), 5*time.Second) }
	})
	dest := netip.MustParseAddrPort(strings.TrimPrefix(imds.URL, "http://"))
	w := needBPF(t, Options{Dests: []netip.AddrPort{dest}})
	tab := NewTable(nil, nil)
	served := make(chan error, 1)
	go func() { served <- Serve(w, &Enricher{}, tab, col.add) }()

	exe, _ := os.Executable()
	for _, tc := range []struct {
		mode  string
		kinds []Kind
		creds bool
		split bool
	}{
		{"token", []Kind{KindToken}, false, false},
		{"v2", []Kind{KindV2}, false, false},
		{"v1creds", []Kind{KindV1}, true, false},
		{"split", []Kind{KindV2}, true, true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			pid := run(t, helperCmd(t, tc.mode, imds.URL))
			evs, ids := col.wait(t, pid, len(tc.kinds))
			e, id := evs[0], ids[0]
			if e.Kind != tc.kinds[0] || (e.Flags&FlagCreds != 0) != tc.creds || (e.Flags&FlagSplit != 0) != tc.split {
				t.Errorf("event %+v: want kind %s creds %v split %v", e, tc.kinds[0], tc.creds, tc.split)
			}
			if e.Dest != dest || e.Tgid != uint32(pid) {
				t.Errorf("event %+v: want dest %s tgid %d", e, dest, pid)
			}
			if id.Exe != exe || id.Netns != "host" || id.User != "root" || id.Gone || len(id.Parents) == 0 {
				t.Errorf("identity %+v: want exe %s, host netns, user root, parents", id, exe)
			}
		})
	}

	curl := testenv.Tool(t, "curl")
	t.Run("curl-v1", func(t *testing.T) {
		pid := run(t, exec.Command(curl, "-s", "-o", "/dev/null", imds.URL+"/latest/meta-data/iam/security-credentials/"))
		evs, ids := col.wait(t, pid, 1)
		if evs[0].Kind != KindV1 || evs[0].Flags&FlagCreds == 0 || evs[0].Comm != "curl" {
			t.Errorf("curl v1 event %+v", evs[0])
		}
		if !strings.Contains(ids[0].Cmdline, "iam/security-credentials") {
			t.Errorf("cmdline %q", ids[0].Cmdline)
		}
	})
	t.Run("curl-v2", func(t *testing.T) {
		pid := run(t, exec.Command(curl, "-s", "-o", "/dev/null", "-H", "X-aws-ec2-metadata-token: secret-token-value-XYZ", imds.URL+"/latest/meta-data/instance-id"))
		evs, _ := col.wait(t, pid, 1)
		if evs[0].Kind != KindV2 || evs[0].Flags&FlagCreds != 0 {
			t.Errorf("curl v2 event %+v", evs[0])
		}
	})

	// Other traffic is not reported: the same fake on another port is not a destination.
	col.mu.Lock()
	before := len(col.evs)
	col.mu.Unlock()
	other := fakeimds.New(t)
	run(t, exec.Command(curl, "-s", "-o", "/dev/null", other.URL+"/latest/meta-data/"))
	time.Sleep(100 * time.Millisecond)
	col.mu.Lock()
	if len(col.evs) != before {
		t.Errorf("a request to a port that is not IMDS was reported: %+v", col.evs[before:])
	}
	col.mu.Unlock()

	// Never a token value, anywhere in what the watcher keeps.
	b, _ := json.Marshal(tab.Snapshot())
	if strings.Contains(string(b), "secret-token-value") || strings.Contains(string(b), "fake-token") {
		t.Errorf("the summary holds a token: %s", b)
	}
	w.Close()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestOtherNetworkNamespace: a request from another network namespace (a container), joined
// to the fake IMDS's namespace by a veth pair with TEST-NET-1 addresses, is attributed to
// its process and marked as not the host's namespace. Both namespaces are the test's own.
func TestOtherNetworkNamespace(t *testing.T) {
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		testenv.Missing(t, "ip (iproute2) not installed")
	}
	curl := testenv.Tool(t, "curl")
	dest := netip.MustParseAddrPort("192.0.2.1:8080")
	w := needBPF(t, Options{Dests: []netip.AddrPort{dest}})
	a, b := fmt.Sprintf("ec2sec-iw-a%d", os.Getpid()), fmt.Sprintf("ec2sec-iw-b%d", os.Getpid())
	va, vb := fmt.Sprintf("iwa%d", os.Getpid()%100000), fmt.Sprintf("iwb%d", os.Getpid()%100000)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipCmd, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", a)
	t.Cleanup(func() { exec.Command(ipCmd, "netns", "del", a).Run() })
	ip("netns", "add", b)
	t.Cleanup(func() { exec.Command(ipCmd, "netns", "del", b).Run() })
	// The pair is created inside namespace a, then one end moves to b: the host's own
	// network never sees it.
	ip("-n", a, "link", "add", va, "type", "veth", "peer", "name", vb)
	ip("-n", a, "link", "set", vb, "netns", b)
	ip("-n", a, "addr", "add", "192.0.2.1/24", "dev", va)
	ip("-n", b, "addr", "add", "192.0.2.2/24", "dev", vb)
	ip("-n", a, "link", "set", va, "up")
	ip("-n", b, "link", "set", vb, "up")
	ip("-n", a, "link", "set", "lo", "up")

	srv := helperCmd(t, "serve", "", ipCmd, "netns", "exec", a)
	srv.Env = append(srv.Env, "IMDSWATCH_LISTEN="+dest.String())
	out, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("fake IMDS in %s did not start: %q", a, line)
	}

	var col collector
	tab := NewTable(nil, nil)
	go Serve(w, &Enricher{}, tab, col.add)
	pid := run(t, exec.Command(ipCmd, "netns", "exec", b, curl, "-s", "-o", "/dev/null", "--max-time", "5",
		"http://"+dest.String()+"/latest/meta-data/iam/security-credentials/web"))
	// ip netns exec execs curl in place: same pid.
	evs, ids := col.wait(t, pid, 1)
	if evs[0].Kind != KindV1 || evs[0].Flags&FlagCreds == 0 || evs[0].Dest != dest {
		t.Errorf("event %+v", evs[0])
	}
	if ids[0].Netns != "other" || ids[0].Comm != "curl" {
		t.Errorf("identity %+v: want another network namespace, comm curl", ids[0])
	}
	s := tab.Snapshot()
	if len(s.Callers) != 1 || s.Callers[0].Netns != "other" || s.Callers[0].V1Creds != 1 {
		t.Errorf("callers %+v", s.Callers)
	}
}

// TestPrivateCgroup2: on a host without a cgroup2 mount the watcher mounts the hierarchy
// privately, attaches to its root and unmounts it: requests are still seen, no mount is left.
func TestPrivateCgroup2(t *testing.T) {
	needBPF(t, Options{}).Close()
	dir, unmount, err := mountCgroup2()
	if err != nil {
		testenv.Missing(t, "cannot mount cgroup2: "+err.Error())
	}
	imds := fakeimds.New(t)
	imds.Set(func(s *fakeimds.Server) { s.V1 = true })
	dest := netip.MustParseAddrPort(strings.TrimPrefix(imds.URL, "http://"))
	w, err := Load(Options{Dests: []netip.AddrPort{dest}, Cgroup: dir})
	unmount()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("private mount point %s left behind: %v", dir, err)
	}
	var col collector
	go Serve(w, &Enricher{}, NewTable(nil, nil), col.add)
	pid := run(t, helperCmd(t, "v1creds", imds.URL))
	if evs, _ := col.wait(t, pid, 1); evs[0].Kind != KindV1 {
		t.Errorf("event %+v", evs[0])
	}
}
