package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/probes"
)

// logLines parses JSON log lines, failing on any other.
func logLines(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var ms []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		ms = append(ms, m)
	}
	return ms
}

// TestDaemonWorkers runs the agent as the CLI does, each cycle and delivery in a worker
// process (this test binary, see TestMain): scans are reported, an outage is retried by a
// later worker, a reload reaches the next worker, and a stop ends with a final delivery.
// No worker outlives the daemon, and the daemon never scans itself.
func TestDaemonWorkers(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	imds := fakeIMDS(t, "i-0wwwwwwwwwwwwwww5")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "config.yaml")
	writeCfg(t, cfgPath, "splay: 0s\nstate_dir: "+state+"\n")

	var logs syncBuf
	cycles := make(chan cycle, 16)
	reload := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := RunCommand{
		ConfigPath: cfgPath, Root: t.TempDir(), Proc: t.TempDir(), Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		Reload: reload, Executable: os.Args[0], WorkerLog: &logs,
		interval: 500 * time.Millisecond, retryBase: 20 * time.Millisecond,
		scanned: cycles,
	}
	// AWS is down until the first cycle has failed to deliver.
	f.Outage(awsfake.ServerError)
	done := make(chan int, 1)
	go func() { done <- c.Run(ctx) }()
	if first := nextCycle(t, cycles, &logs, 30*time.Second); first.err == nil || sum(first.flushed.Pending) == 0 {
		t.Fatalf("first cycle %+v: delivered although AWS was down; logs:\n%s", first, logs.Bytes())
	}
	f.Outage(0)
	waitEvents := func(group string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for len(f.Events(group, "i-0wwwwwwwwwwwwwww5")) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no events in %s; logs:\n%s", group, logs.Bytes())
			}
			select {
			case <-cycles:
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitEvents("/ec2sec/findings")
	writeCfg(t, cfgPath, "splay: 0s\nstate_dir: "+state+"\ncloudwatch_logs: {log_group: /other}\n")
	reload <- os.Interrupt
	waitEvents("/other")
	cancel()
	waitStopped(t, done, 60*time.Second)

	out := logs.Bytes()
	modes := map[string]int{}
	var scans int
	for _, m := range logLines(t, out) {
		switch m["msg"] {
		case "worker done":
			if pid, _ := m["pid"].(float64); int(pid) == os.Getpid() || pid == 0 {
				t.Errorf("worker pid %v: not a child process", m["pid"])
			}
			if m["exit"] != float64(0) {
				t.Errorf("worker exit %v", m["exit"])
			}
			modes[m["mode"].(string)]++
		case "scan done":
			scans++
		}
	}
	// At least: the delivery at start, two cycles, a retry or a cycle that delivered, the
	// final delivery.
	if modes[workerCycle] < 2 || modes[workerFlush] < 2 {
		t.Errorf("workers by mode %v, want >= 2 cycles and >= 2 deliveries", modes)
	}
	if scans != modes[workerCycle] {
		t.Errorf("%d scans logged for %d cycle workers", scans, modes[workerCycle])
	}
	if last := logLines(t, out); last[len(last)-1]["msg"] != "ec2sec agent stopping" {
		t.Errorf("last log %v, want the stop message", last[len(last)-1]["msg"])
	}
	assertNoLeak(t, "daemon and worker logs", out)
	assertDirNoLeak(t, state)
	if v := f.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
}

// script writes an executable shell script standing in for a worker.
func script(t *testing.T, body string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("shell script workers")
	}
	p := filepath.Join(t.TempDir(), "worker.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWorkerKilledOverLimit: a worker that does not finish in time is killed, and the daemon
// carries on with an error.
func TestWorkerKilledOverLimit(t *testing.T) {
	var logs syncBuf
	ch := &children{exe: script(t, "exec sleep 600"), log: slog.New(slog.NewJSONHandler(&logs, nil))}
	start := time.Now()
	_, err := ch.run(context.Background(), workerRequest{Mode: workerFlush}, 300*time.Millisecond)
	if err == nil {
		t.Fatal("no error from a killed worker")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("kill took %v", d)
	}
	if !strings.Contains(string(logs.Bytes()), "worker over its time limit; killing it") {
		t.Errorf("kill not logged:\n%s", logs.Bytes())
	}
}

// TestWorkerStopClosesStdin: a stop closes the worker's stdin, which is its signal to stop;
// one that then stops in time is not killed and its result is used. The request is the
// first line it reads.
func TestWorkerStopClosesStdin(t *testing.T) {
	dir := t.TempDir()
	req := filepath.Join(dir, "req")
	exe := script(t, `read line; printf '%s\n' "$line" > `+req+`; cat > /dev/null; echo '{"flushed":{"accepted":{"cloudwatch_logs":3}}}'`)
	var logs syncBuf
	ch := &children{exe: exe, root: "/r", proc: "/p", log: slog.New(slog.NewJSONHandler(&logs, nil)), grace: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	res, err := ch.run(ctx, workerRequest{Mode: workerFlush, Budget: time.Second}, time.Hour)
	if err != nil {
		t.Fatalf("run: %v; logs:\n%s", err, logs.Bytes())
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("stop took %v: stdin was not closed, the worker was killed after its grace", d)
	}
	if res.Flushed.Accepted["cloudwatch_logs"] != 3 {
		t.Errorf("result %+v", res)
	}
	b, err := os.ReadFile(req)
	if err != nil {
		t.Fatal(err)
	}
	var got workerRequest
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("request %q: %v", b, err)
	}
	if got.Mode != workerFlush || got.Root != "/r" || got.Proc != "/p" || got.Budget != time.Second {
		t.Errorf("request %+v", got)
	}
}

// TestWorkerCommandCancelled: the worker side of a stop. Closing stdin cancels a delivery
// that is waiting on an endpoint that never answers, and the worker still writes its result.
func TestWorkerCommandCancelled(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	cfg := testConfig(t)
	// Something to deliver, spooled while the fake answers.
	rep, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Spool(context.Background(), synthetic(testIdentity("i-0ccccccccccccccc1"), time.Now(), []string{"imds"},
		probes.NewResult("imds-v1-enabled", probes.Failed, "", "IMDSv1 answers"))); err != nil {
		t.Fatal(err)
	}
	hole := blackHole(t)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", hole)
	t.Setenv("AWS_ENDPOINT_URL_SECURITYHUB", hole)
	line, _ := json.Marshal(workerRequest{Mode: workerFlush, Config: cfg, Budget: 10 * time.Minute})
	pr, pw := io.Pipe()
	var stdout bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- WorkerCommand{Stdin: pr, Stdout: &stdout}.Run(context.Background()) }()
	pw.Write(append(line, '\n'))
	time.Sleep(300 * time.Millisecond)
	pw.Close()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop when its stdin closed")
	}
	var res workerResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("result %q: %v", stdout.Bytes(), err)
	}
	if res.Err == "" || sum(res.Flushed.Pending) == 0 {
		t.Errorf("result %+v, want an error and the events still pending", res)
	}
}

// blackHole is a loopback endpoint that accepts connections and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

// TestExecutableIsSelf: the path the daemon starts its workers from runs this very binary
// (on Linux /proc/self/exe, which still does after the file was replaced).
func TestExecutableIsSelf(t *testing.T) {
	if os.Getenv("EC2SEC_SELF_CHILD") == "1" {
		return // the child started below: run, and start nothing
	}
	exe := Executable()
	if exe == "" {
		t.Fatal("no executable")
	}
	if runtime.GOOS == "linux" && exe != selfExe {
		t.Errorf("executable %q, want %s", exe, selfExe)
	}
	cmd := exec.Command(exe, "-test.run=^TestExecutableIsSelf$", "-test.v")
	cmd.Env = append(os.Environ(), "EC2SEC_SELF_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestExecutableIsSelf") {
		t.Errorf("%s did not run this test binary: %v\n%s", exe, err, out)
	}
}
