package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/agent/spool"
	"github.com/ec2sec/ec2sec/probes/imdswatch"
)

// fakeWatch is a kernel side a test feeds: Read blocks until the test sends an event or the
// watch is closed.
type fakeWatch struct {
	ch     chan imdswatch.Event
	closed chan struct{}
	once   sync.Once
	loads  atomic.Int32
}

func newFakeWatch() *fakeWatch {
	return &fakeWatch{ch: make(chan imdswatch.Event), closed: make(chan struct{})}
}

func (f *fakeWatch) Read() (imdswatch.Event, error) {
	select {
	case e := <-f.ch:
		return e, nil
	case <-f.closed:
		return imdswatch.Event{}, imdswatch.ErrClosed
	}
}

func (f *fakeWatch) Stats() (imdswatch.Stats, error) { return imdswatch.Stats{}, nil }

func (f *fakeWatch) load(imdswatch.Options) (imdswatch.Source, func() error, error) {
	f.loads.Add(1)
	return f, func() error { f.once.Do(func() { close(f.closed) }); return nil }, nil
}

// v1 is a token-less request by this test process (alive, so /proc names it).
func v1Event() imdswatch.Event {
	return imdswatch.Event{Kind: imdswatch.KindV1, Tgid: uint32(os.Getpid()), SendTgid: uint32(os.Getpid()),
		Comm: "agent.test", Dest: netip.MustParseAddrPort("169.254.169.254:80")}
}

// failingLoad is a host where the watcher cannot load, counting the attempts.
func failingLoad(n *atomic.Int32, why string) watchLoader {
	return func(imdswatch.Options) (imdswatch.Source, func() error, error) {
		n.Add(1)
		return nil, nil, fmt.Errorf("%w: %s", imdswatch.ErrNotAvailable, why)
	}
}

// notifySocket listens where a Type=notify service's NOTIFY_SOCKET points (an abstract
// socket, which any user may reach) and hands over what the service sends.
type notifySocket struct {
	addr string
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	addr := fmt.Sprintf("@ec2sec-test-notify-%d-%d", os.Getpid(), time.Now().UnixNano())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{addr: addr, msgs: make(chan string, 16)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return n
}

// wait returns the next message, failing after d.
func (n *notifySocket) wait(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case m := <-n.msgs:
		return m
	case <-time.After(d):
		t.Fatalf("no sd_notify message in %s", d)
		return ""
	}
}

func (n *notifySocket) getenv(k string) string {
	if k == "NOTIFY_SOCKET" {
		return n.addr
	}
	return ""
}

func residentConfig(t *testing.T, state string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte("state_dir: "+state+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startResidentCmd runs `imds-watch --resident` in this process until the returned stop is
// called; it returns the exit code from stop.
func startResidentCmd(t *testing.T, cfgPath string, n *notifySocket, load watchLoader, log *slog.Logger) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb syncBuf
	c := IMDSWatchCommand{Resident: true, ConfigPath: cfgPath, Stdout: &errb, Stderr: &errb, Getenv: n.getenv, load: load, Log: log}
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("the resident watcher did not stop: %s", errb.Bytes())
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return stop
}

func summaryIn(t *testing.T, state string) *imdswatch.Summary {
	t.Helper()
	s, err := imdswatch.LoadSummary(filepath.Join(state, imdswatch.SummaryFile))
	if err != nil || s == nil {
		t.Fatalf("summary: %+v, %v", s, err)
	}
	return s
}

// TestWatchOwnershipRule checks the rule of agent/imdswatch.go with a fed kernel side: while
// the resident watcher (the ec2sec-imdswatch unit) holds the watch, the daemon loads nothing
// and writes nothing, and the scans read the resident's window up to now; once it is gone,
// a daemon that cannot load says why; the reason of a resident that could not load is kept.
func TestWatchOwnershipRule(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	cfgPath := residentConfig(t, state)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	n := listenNotify(t)
	fw := newFakeWatch()
	stop := startResidentCmd(t, cfgPath, n, fw.load, log)
	if m := n.wait(t, 10*time.Second); !strings.Contains(m, "READY=1") || !strings.Contains(m, "STATUS=watching") {
		t.Fatalf("resident's first notification %q", m)
	}

	// The daemon finds the watch held: it neither loads nor writes.
	var daemonLoads atomic.Int32
	before, _ := os.ReadFile(filepath.Join(state, imdswatch.SummaryFile))
	d := &daemonWatch{getenv: func(string) string { return "" }, log: log, load: failingLoad(&daemonLoads, "no CAP_BPF")}
	d.ensure(cfg)
	d.ensure(cfg)
	after, _ := os.ReadFile(filepath.Join(state, imdswatch.SummaryFile))
	if daemonLoads.Load() != 0 || d.rw != nil || !bytes.Equal(before, after) {
		t.Fatalf("daemon beside a resident watcher: %d load(s), watching %v, summary changed %v", daemonLoads.Load(), d.rw != nil, !bytes.Equal(before, after))
	}
	if c := strings.Count(string(logs.Bytes()), "runs in another process"); c != 1 {
		t.Errorf("the daemon said %d times that another process watches, want once:\n%s", c, logs.Bytes())
	}

	// A request is in the summary at once (the first since the last request-driven save).
	fw.ch <- v1Event()
	deadline := time.Now().Add(5 * time.Second)
	for len(summaryIn(t, state).Callers) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the resident did not save the request")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A reader takes the live resident's open window to now.
	time.Sleep(50 * time.Millisecond)
	now := time.Now()
	s, err := loadWatchSummary(state)
	if err != nil || !s.Running || s.Watching[len(s.Watching)-1].To.Before(now) || s.Callers[0].V1 != 1 {
		t.Fatalf("read beside a live resident: %+v, %v", s, err)
	}

	if code := stop(); code != ExitOK {
		t.Fatalf("resident exit %d", code)
	}
	if m := n.wait(t, time.Second); m != "STOPPING=1" {
		t.Errorf("notification at stop %q", m)
	}
	s = summaryIn(t, state)
	if s.Running || len(s.Watching) != 1 || len(s.Callers) != 1 || s.Unavailable != "" {
		t.Fatalf("summary after the resident stopped: %+v", s)
	}

	// Nobody holds the watch now: the daemon tries, cannot, and says why, keeping the window.
	d.ensure(cfg)
	s = summaryIn(t, state)
	if daemonLoads.Load() != 1 || !strings.Contains(s.Unavailable, "no CAP_BPF") || !strings.Contains(s.Unavailable, "ec2sec-imdswatch") || len(s.Callers) != 1 || len(s.Watching) != 1 {
		t.Fatalf("daemon alone, %d load(s): %+v", daemonLoads.Load(), s)
	}

	// A resident that cannot load either (a kernel without the hooks) says why with authority
	// and exits 0 (no restart loop); the daemon's later tries keep its reason.
	var residentLoads atomic.Int32
	stop = startResidentCmd(t, cfgPath, n, failingLoad(&residentLoads, "attach cgroup/connect4: invalid argument"), log)
	if m := n.wait(t, 10*time.Second); !strings.Contains(m, "READY=1") || !strings.Contains(m, "STATUS=not watching: ") {
		t.Fatalf("failing resident's notification %q", m)
	}
	if code := stop(); code != ExitOK {
		t.Errorf("a resident that cannot load exits %d, want 0", code)
	}
	d.ensure(cfg)
	s = summaryIn(t, state)
	if daemonLoads.Load() != 2 || residentLoads.Load() != 1 || !strings.Contains(s.Unavailable, "attach cgroup/connect4") || strings.Contains(s.Unavailable, "no CAP_BPF") {
		t.Fatalf("after a failing resident and a daemon try: %+v", s)
	}
	if _, err := os.Stat(filepath.Join(state, watchLockFile)); err != nil {
		t.Errorf("lock file: %v", err)
	}
}

// TestResidentWaitsForDaemon: a daemon that loaded the watcher itself holds the watch; the
// resident started beside it reports ready (waiting) without loading, and takes over when
// the daemon lets go: only one of them is ever loaded.
func TestResidentWaitsForDaemon(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	cfgPath := residentConfig(t, state)
	cfg, _ := LoadConfig(cfgPath)
	log := slog.New(slog.DiscardHandler)
	daemonSide, residentSide := newFakeWatch(), newFakeWatch()
	d := &daemonWatch{getenv: func(string) string { return "" }, log: log, load: daemonSide.load}
	d.ensure(cfg)
	if d.rw == nil || daemonSide.loads.Load() != 1 {
		t.Fatal("the daemon did not take the free watch")
	}
	n := listenNotify(t)
	stop := startResidentCmd(t, cfgPath, n, residentSide.load, log)
	if m := n.wait(t, 10*time.Second); !strings.Contains(m, "READY=1") || !strings.Contains(m, "STATUS=waiting") {
		t.Fatalf("resident beside a watching daemon: %q", m)
	}
	time.Sleep(lockPoll + lockPoll/2)
	if residentSide.loads.Load() != 0 {
		t.Fatal("the resident loaded while the daemon held the watch")
	}
	d.stop()
	if m := n.wait(t, 3*lockPoll); !strings.Contains(m, "STATUS=watching") || residentSide.loads.Load() != 1 {
		t.Fatalf("after the daemon stopped: %q, %d load(s)", m, residentSide.loads.Load())
	}
	// The daemon's next cycle finds the watch held again and leaves it.
	d.ensure(cfg)
	if d.rw != nil || daemonSide.loads.Load() != 1 {
		t.Fatal("the daemon took the watch back from the resident")
	}
	if code := stop(); code != ExitOK {
		t.Fatalf("resident exit %d", code)
	}
	if s := summaryIn(t, state); s.Running || len(s.Watching) != 2 {
		t.Fatalf("window of daemon then resident: %+v", s)
	}
}

// TestWatchSummaryDeadWriter: a summary left "running" by a writer that died (kill -9: the
// lock went with it) was watched until its last save, not until now; while a writer holds
// the lock its window reaches now.
func TestWatchSummaryDeadWriter(t *testing.T) {
	dir := t.TempDir()
	saved := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	s := &imdswatch.Summary{Version: imdswatch.SummaryVersion, Running: true, Updated: saved,
		Watching: []imdswatch.Segment{{From: saved.Add(-time.Hour), To: saved}}}
	if err := writeSummary(dir, filepath.Join(dir, imdswatch.SummaryFile), s); err != nil {
		t.Fatal(err)
	}
	got, err := loadWatchSummary(dir)
	if err != nil || got.Running || !got.Watching[0].To.Equal(saved) || !got.Updated.Equal(saved) || got.Observed(time.Now()) != time.Hour {
		t.Fatalf("dead writer's summary read as %+v, %v", got, err)
	}
	lock, err := spool.Acquire(context.Background(), filepath.Join(dir, watchLockFile))
	if err != nil {
		t.Fatal(err)
	}
	got, _ = loadWatchSummary(dir)
	if !got.Running || got.Observed(time.Now()) < 4*time.Hour-time.Minute {
		t.Errorf("live writer's summary read as %+v", got)
	}
	lock.Release()
	// A daemon that finds it so (lock free, cannot load) closes it at its last save.
	if err := recordUnavailable(dir, "no CAP_BPF", false); err != nil {
		t.Fatal(err)
	}
	got = summaryIn(t, dir)
	if got.Running || !got.Updated.Equal(saved) || got.Unavailable != "no CAP_BPF" || got.Observed(time.Now()) != time.Hour {
		t.Errorf("closed summary %+v", got)
	}
}

// TestSDNotify: the READY message reaches a NOTIFY_SOCKET, abstract or a path; without one
// nothing is sent.
func TestSDNotify(t *testing.T) {
	n := listenNotify(t)
	if err := sdNotify(n.getenv, "READY=1\nSTATUS=x"); err != nil {
		t.Fatal(err)
	}
	if m := n.wait(t, time.Second); m != "READY=1\nSTATUS=x" {
		t.Errorf("got %q", m)
	}
	p := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Skipf("unixgram: %v", err)
	}
	defer c.Close()
	if err := sdNotify(func(string) string { return p }, "READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(time.Second))
	if k, err := c.Read(buf); err != nil || string(buf[:k]) != "READY=1" {
		t.Errorf("path socket got %q, %v", buf[:k], err)
	}
	if err := sdNotify(func(string) string { return "" }, "READY=1"); err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v", err)
	}
	if err := sdNotify(func(string) string { return "relative" }, "READY=1"); err == nil {
		t.Error("a relative NOTIFY_SOCKET was accepted")
	}
}

// TestResidentUsage: the resident watcher writes the summary, not a report; without a state
// dir or with the probe disabled it watches nothing and says so, ready for systemd.
func TestResidentUsage(t *testing.T) {
	var out, errb bytes.Buffer
	c := IMDSWatchCommand{Resident: true, Format: "json", ConfigPath: residentConfig(t, t.TempDir()), Stdout: &out, Stderr: &errb}
	if code := c.Run(context.Background()); code != ExitUsage || !strings.Contains(errb.String(), "--format") {
		t.Errorf("--resident --format json: exit %d, %s", code, errb.String())
	}
	p := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(p, []byte("state_dir: "+t.TempDir()+"\nprobes:\n  disable: [imdswatch]\n"), 0o600)
	n := listenNotify(t)
	fw := newFakeWatch()
	c = IMDSWatchCommand{Resident: true, ConfigPath: p, Stdout: &out, Stderr: &errb, Getenv: n.getenv, load: fw.load}
	if code := c.Run(context.Background()); code != ExitOK || fw.loads.Load() != 0 {
		t.Errorf("probe disabled: exit %d, %d load(s)", code, fw.loads.Load())
	}
	if m := n.wait(t, time.Second); !strings.Contains(m, "READY=1") || !strings.Contains(m, "disabled") {
		t.Errorf("probe disabled: notified %q", m)
	}
}
