package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/imdswatch"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

type watchDoc struct {
	Schema  string
	Results []struct {
		Check, Status, Severity, Reason string
		Evidence                        map[string]any
	}
}

func watchConfig(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(p, []byte("state_dir: "+filepath.Join(t.TempDir(), "state")+"\n"), 0o600)
	return p
}

func runWatch(t *testing.T, c IMDSWatchCommand) (int, watchDoc, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	code := c.Run(context.Background())
	var doc watchDoc
	if c.Format == "json" {
		if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
			t.Fatalf("json: %v\n%s\n%s", err, out.String(), errb.String())
		}
	}
	return code, doc, out.String() + errb.String()
}

// TestIMDSWatchCommandNotAvailable: a kernel without the hooks (the load fails) gives an
// ec2sec/v1 document whose imdswatch results are NOT_AVAILABLE with the reason.
func TestIMDSWatchCommandNotAvailable(t *testing.T) {
	imds := fakeimds.New(t)
	c := IMDSWatchCommand{Format: "json", Duration: time.Millisecond, ConfigPath: watchConfig(t),
		Getenv:      func(string) string { return imds.URL },
		ScanOptions: ScanOptions{IMDS: metadata.New(metadata.Options{Endpoint: imds.URL})},
		load: func(imdswatch.Options) (imdswatch.Source, func() error, error) {
			return nil, nil, fmt.Errorf("%w: attach cgroup/connect4: invalid argument", imdswatch.ErrNotAvailable)
		}}
	code, doc, _ := runWatch(t, c)
	if code != ExitNoScan || doc.Schema != Schema || len(doc.Results) != 2 {
		t.Fatalf("exit %d, doc %+v", code, doc)
	}
	for _, r := range doc.Results {
		if r.Status != "NOT_AVAILABLE" || !strings.Contains(r.Reason, "attach cgroup/connect4") {
			t.Errorf("%s: %s %q", r.Check, r.Status, r.Reason)
		}
	}
}

// TestIMDSWatchCommand watches real BPF for a few seconds while curl fetches credentials
// without a token from a fake IMDS on loopback: the JSON names curl as a CRITICAL v1 caller.
func TestIMDSWatchCommand(t *testing.T) {
	testenv.System(t) // loads BPF into the kernel and runs curl
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		testenv.Missing(t, "imds-watch loads BPF programs: Linux, as root")
	}
	curl := testenv.Tool(t, "curl")
	imds := fakeimds.New(t)
	// Answered at loopback speed, curl can exit before the watcher reads its /proc entry and
	// be named without its executable; a real IMDS answers across the network.
	imds.Set(func(s *fakeimds.Server) {
		s.V1 = true
		s.Before = func(*http.Request) { time.Sleep(300 * time.Millisecond) }
	})
	c := IMDSWatchCommand{Format: "json", Duration: 5 * time.Second, ConfigPath: watchConfig(t),
		Getenv:      func(string) string { return imds.URL },
		ScanOptions: ScanOptions{IMDS: metadata.New(metadata.Options{Endpoint: imds.URL})}}
	// curl calls once the programs are attached (loading them took over a second on a busy
	// machine, and a call before that is not seen); the watch lasts Duration from then.
	loaded := make(chan struct{})
	c.load = func(o imdswatch.Options) (imdswatch.Source, func() error, error) {
		defer close(loaded)
		w, err := imdswatch.Load(o)
		if err != nil {
			return nil, nil, err
		}
		return w, w.Close, nil
	}
	go func() {
		<-loaded
		exec.Command(curl, "-s", "-o", "/dev/null", imds.URL+"/latest/meta-data/iam/security-credentials/web").Run()
	}()
	code, doc, out := runWatch(t, c)
	if code == ExitNoScan && strings.Contains(out, "not available") {
		testenv.Missing(t, "BPF watcher does not load here: "+out)
	}
	var v1 int
	for _, r := range doc.Results {
		if r.Check == "imds-v1-callers" && r.Status == "FAILED" {
			v1++
			if r.Severity != "CRITICAL" || r.Evidence["exe"] != curl || !strings.Contains(r.Reason, curl) {
				t.Errorf("v1 caller %+v", r)
			}
		}
		if r.Check == "imds-container-callers" && r.Status != "PASSED" {
			t.Errorf("container callers: %s %q", r.Status, r.Reason)
		}
	}
	if code != ExitOK || v1 != 1 {
		t.Fatalf("exit %d, %d v1 caller(s): %s", code, v1, out)
	}
}

// TestDaemonKeepsIMDSWatch: the run daemon keeps the watcher loaded, writes the window to the
// state dir before its scan cycles and at stop, and a later scan reads it: curl's token-less
// request is an imds-v1-callers FAILED result; the stopped daemon's window is closed.
func TestDaemonKeepsIMDSWatch(t *testing.T) {
	testenv.System(t) // loads BPF into the kernel and runs curl
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		testenv.Missing(t, "the daemon's IMDS watcher loads BPF programs: Linux, as root")
	}
	curl := testenv.Tool(t, "curl")
	imds := fakeimds.New(t)
	imds.Set(func(s *fakeimds.Server) { s.V1 = true })
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "config.yaml")
	writeCfg(t, cfgPath, "splay: 0s\nstate_dir: "+state+"\n")
	var logs syncBuf
	cycles := make(chan cycle, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	only := []probes.Probe{probes.IMDSWatchProbe{}}
	getenv := func(k string) string {
		if k == "AWS_EC2_METADATA_SERVICE_ENDPOINT" {
			return imds.URL
		}
		return os.Getenv(k)
	}
	c := RunCommand{
		ConfigPath: cfgPath, Root: t.TempDir(), Proc: t.TempDir(), Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		ScanOptions: ScanOptions{IMDS: metadata.New(metadata.Options{Endpoint: imds.URL}), Available: only, Getenv: getenv},
		interval:    300 * time.Millisecond, scanned: cycles,
	}
	done := make(chan int, 1)
	go func() { done <- c.Run(ctx) }()
	nextCycle(t, cycles, &logs, 20*time.Second)
	if !bytes.Contains(logs.Bytes(), []byte("IMDS watcher loaded")) {
		testenv.Missing(t, "the daemon did not load the watcher: "+string(logs.Bytes()))
	}
	if out, err := exec.Command(curl, "-s", "-o", "/dev/null", imds.URL+"/latest/meta-data/").CombinedOutput(); err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
	// The agent's own IMDS client (token and v2 requests) is a caller too; curl is the v1 one
	// (named by its comm alone when it exited before the watcher read /proc, on a busy
	// machine: the fake IMDS answers at once).
	curlCaller := func(s *imdswatch.Summary) *imdswatch.Caller {
		for _, c := range s.Callers {
			if c.Exe == curl || c.Exe == "" && c.Comm == "curl" {
				return c
			}
		}
		return nil
	}
	// The event reaches the table asynchronously: a cycle's save may come just before it, so
	// wait a few cycles for it.
	var sum *imdswatch.Summary
	var err error
	for i := 0; i < 10; i++ {
		nextCycle(t, cycles, &logs, 20*time.Second)
		sum, err = imdswatch.LoadSummary(filepath.Join(state, imdswatch.SummaryFile))
		if err != nil || sum == nil || curlCaller(sum) != nil {
			break
		}
	}
	if err != nil || sum == nil || !sum.Running || curlCaller(sum) == nil || curlCaller(sum).V1 != 1 {
		cancel()
		<-done
		t.Fatalf("summary while running: %+v, %v\n%s", sum, err, logs.Bytes())
	}
	cancel()
	waitStopped(t, done, 30*time.Second)
	sum, err = imdswatch.LoadSummary(filepath.Join(state, imdswatch.SummaryFile))
	if err != nil || sum == nil || sum.Running || len(sum.Watching) != 1 {
		t.Fatalf("summary after stop: %+v, %v", sum, err)
	}
	cfg, _ := LoadConfig(cfgPath)
	r, err := Scan(context.Background(), ScanOptions{Root: t.TempDir(), Config: cfg, Available: only,
		IMDS: metadata.New(metadata.Options{Endpoint: imds.URL})})
	if err != nil {
		t.Fatal(err)
	}
	var failed int
	for _, res := range r.Results {
		if res.Check == "imds-v1-callers" && res.Status == "FAILED" && strings.Contains(res.Reason, "curl") {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("scan of the daemon's window: %+v", r.Results)
	}
}
