package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// nextCycle waits for the daemon's next scan cycle.
func nextCycle(t *testing.T, cycles <-chan cycle, logs *syncBuf, d time.Duration) cycle {
	t.Helper()
	select {
	case cy := <-cycles:
		return cy
	case <-time.After(d):
		t.Fatalf("no scan cycle; logs:\n%s", logs.Bytes())
		return cycle{}
	}
}

// waitStopped waits for a cancelled daemon's exit code, which must be ExitOK.
func waitStopped(t *testing.T, done <-chan int, d time.Duration) {
	t.Helper()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit %d", code)
		}
	case <-time.After(d):
		t.Fatal("daemon did not stop")
	}
}

func writeCfg(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDaemon runs the agent loop: scans on its schedule, survives an outage (retrying with
// backoff), reloads its config on SIGHUP (keeping the old one when the new is bad), and
// stops with a final flush when cancelled. Its logs are JSON lines without secrets.
func TestDaemon(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	imds := fakeIMDS(t, "i-0ddddddddddddddd4")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "config.yaml")
	writeCfg(t, cfgPath, "splay: 0s\nstate_dir: "+state+"\n")
	root := t.TempDir()

	var logs syncBuf
	cycles := make(chan cycle, 16)
	reload := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	imdsClient := metadata.New(metadata.Options{Endpoint: imds.URL})
	c := RunCommand{
		ConfigPath: cfgPath, Root: root, Proc: t.TempDir(), Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		Reload:      reload,
		ScanOptions: ScanOptions{IMDS: imdsClient},
		Reporter:    ReporterOptions{AWS: fastAWS()},
		interval:    300 * time.Millisecond, retryBase: 20 * time.Millisecond,
		scanned: cycles,
	}
	// CloudWatch Logs is down for the first cycle (every attempt fails).
	f.Inject(awsfake.OpCreateLogGroup, awsfake.ServerError, awsfake.ServerError, awsfake.ServerError, awsfake.ServerError)
	done := make(chan int, 1)
	go func() { done <- c.Run(ctx) }()

	next := func() cycle { t.Helper(); return nextCycle(t, cycles, &logs, 20*time.Second) }
	first := next()
	if first.err == nil {
		t.Fatal("first cycle delivered although CloudWatch Logs was down")
	}
	// The retry timer delivers the spooled events before the next scan needs to.
	deadline := time.Now().Add(10 * time.Second)
	for len(f.Events("/ec2sec/findings", "i-0ddddddddddddddd4")) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(f.Events("/ec2sec/findings", "i-0ddddddddddddddd4")) == 0 {
		t.Fatalf("outage not recovered; logs:\n%s", logs.Bytes())
	}
	if cy := next(); cy.err != nil {
		t.Fatalf("second cycle: %v", cy.err)
	}
	// A bad config on SIGHUP is refused; the agent goes on.
	writeCfg(t, cfgPath, "splay: 0s\nstate_dir: "+state+"\nbogus_key: 1\n")
	reload <- os.Interrupt
	// A good one is taken: events now go to another group.
	time.Sleep(50 * time.Millisecond)
	writeCfg(t, cfgPath, "splay: 0s\nstate_dir: "+state+"\ncloudwatch_logs: {log_group: /other}\n")
	reload <- os.Interrupt
	deadline = time.Now().Add(10 * time.Second)
	for len(f.Events("/other", "i-0ddddddddddddddd4")) == 0 && time.Now().Before(deadline) {
		select {
		case <-cycles:
		case <-time.After(50 * time.Millisecond):
		}
	}
	if len(f.Events("/other", "i-0ddddddddddddddd4")) == 0 {
		t.Fatalf("reloaded config not used; logs:\n%s", logs.Bytes())
	}
	cancel()
	waitStopped(t, done, 30*time.Second)
	out := logs.Bytes()
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	msgs := map[string]bool{}
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		msgs[m["msg"].(string)] = true
	}
	for _, want := range []string{"ec2sec agent started", "delivery incomplete; will retry", "config reload failed; keeping the running config", "config reloaded", "ec2sec agent stopping"} {
		if !msgs[want] {
			t.Errorf("no %q in the logs", want)
		}
	}
	assertNoLeak(t, "daemon logs", out)
	assertDirNoLeak(t, state)
	if v := f.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
	awsfake.ValidateBatchImportFindings(t, f.Bodies())
}

// TestDaemonBadConfig: a config that cannot be read at start is the one error that exits.
func TestDaemonBadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	writeCfg(t, p, "nope: 1\n")
	if code := (RunCommand{ConfigPath: p}).Run(context.Background()); code != ExitUsage {
		t.Errorf("exit %d, want %d", code, ExitUsage)
	}
}
