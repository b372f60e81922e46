package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
)

const killChildEnv = "EC2SEC_KILL9_CHILD_STATE"

// killReport is iteration i of the child's endless scans: 150 results whose statuses flip and
// some of which vanish, with enough evidence that spool writes take a while.
func killReport(i int, at time.Time) *Report {
	id := testIdentity("i-0kkkkkkkkkkkkkkk9")
	var rs []probes.Result
	for j := range 150 {
		if (i*7+j)%11 == 0 {
			continue // gone this time
		}
		st := probes.Failed
		if (i+j)%3 == 0 {
			st = probes.Passed
		}
		r := probes.NewResult("imds-v1-enabled", st, fmt.Sprintf("/etc/conf-%03d", j), fmt.Sprintf("iteration %d", i%4)).
			With("blob", strings.Repeat("e", 3000))
		rs = append(rs, r)
	}
	rep := synthetic(id, at, []string{"imds"}, rs...)
	rep.ScannedAt = at.UTC().Truncate(time.Millisecond)
	return rep
}

// TestKill9Child is the child of TestKill9: it spools and delivers forever until killed.
func TestKill9Child(t *testing.T) {
	testenv.System(t)
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("helper process for TestKill9")
	}
	// testenv.Main reset the endpoints to a closed port: point them at the parent's fake.
	url := os.Getenv(killChildEnv + "_URL")
	for _, k := range []string{"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_ENDPOINT_URL_SECURITYHUB"} {
		t.Setenv(k, url)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", plantedSigningKey)
	cfg := DefaultConfig()
	cfg.StateDir = dir
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Widen the windows where a crash hurts most, so the parent's kills land in them.
	pause := func(point string) {
		fmt.Printf("pause %s\n", point)
		time.Sleep(time.Duration(50+rand.N(200)) * time.Millisecond)
	}
	rep, err := NewReporter(cfg, log, ReporterOptions{AWS: fastAWS(), pause: pause})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Start where no earlier child did, so every report changes something.
	for i := rand.N(1 << 20); ; i++ {
		if _, err := rep.Spool(ctx, killReport(i, time.Now())); err != nil {
			log.Error("spool", "err", err)
		}
		if _, err := rep.Flush(ctx); err != nil {
			log.Error("flush", "err", err)
		}
	}
}

// TestKill9 kills the agent with SIGKILL at random points of spool writes and sends, many
// times, while the fake loses answers, throttles, resets and fails some findings, then lets a
// fresh run deliver. Nothing may be lost or torn: the spool ends empty,
// the state loads, and Security Hub holds, for every finding the state remembers, exactly
// the version the state last sent (same UpdatedAt and RecordState), unless Security Hub
// refused that version for good, and every finding the state forgot is archived.
func TestKill9(t *testing.T) {
	testenv.System(t)
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL semantics")
	}
	f := awsfake.New(t)
	useFake(t, f)
	dir := filepath.Join(t.TempDir(), "state")
	// Kill k lands at a random time (k%3 == 0), in the window between writing a report's
	// batches and saving its state (1), or between a send and the spool update (2). The last
	// kill is of kind 1, whose leftovers the final check sees unmasked.
	kills := 17
	if testing.Short() {
		kills = 5
	}
	for k := range kills {
		// Delivery trouble while the kills land: answers lost after the work was done (so a
		// kill can meet a send the SDK repeats), throttling, resets, partial FailedFindings.
		switch k % 4 {
		case 1:
			f.Inject(awsfake.OpBatchImportFindings, awsfake.Lost, awsfake.Throttle, awsfake.Throttle)
		case 3:
			f.Inject(awsfake.OpPutLogEvents, awsfake.Lost, awsfake.Reset)
			f.Inject(awsfake.OpBatchImportFindings, awsfake.PartialFail, awsfake.Reset)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1")
		cmd.Env = testenv.Environ(killChildEnv+"="+dir, killChildEnv+"_URL="+f.URL)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		points := make(chan string, 64)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				select {
				case points <- sc.Text():
				default:
				}
			}
		}()
		want := map[int]string{1: "pause spooled", 2: "pause sent"}[k%3]
		if want == "" {
			time.Sleep(time.Duration(100+rand.N(1400)) * time.Millisecond)
		} else {
			// Let a send kill fall after the first, second or third send (logs go first; always
			// killing at the first would starve the findings queue).
			n := 1
			if k%3 == 2 {
				n += rand.N(3)
			}
			timeout := time.After(60 * time.Second)
		wait:
			for {
				select {
				case p := <-points:
					if p == want {
						if n--; n == 0 {
							break wait
						}
					}
				case <-timeout:
					t.Fatalf("child never reached %q; stderr:\n%s", want, stderr.String())
				}
			}
		}
		cmd.Process.Signal(os.Kill)
		cmd.Wait()
		t.Logf("kill %d: %d findings imported so far", k, len(f.Findings()))
		if k == 0 {
			t.Logf("child stderr: %s", stderr.String())
		}
	}
	if f.Calls(awsfake.OpBatchImportFindings)+f.Calls(awsfake.OpPutLogEvents) == 0 {
		t.Fatal("the child never sent anything: the test did not test")
	}
	// Leftover temp files are allowed (cleaned on open); batches must all be whole.
	entries, _ := os.ReadDir(filepath.Join(dir, "spool"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			b, err := os.ReadFile(filepath.Join(dir, "spool", e.Name()))
			if err != nil || !json.Valid(b) {
				t.Errorf("torn spool batch %s", e.Name())
			}
		}
	}

	cfg := DefaultConfig()
	cfg.StateDir = dir
	rep, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	// A fresh run delivers what is left, before any scan of its own (so nothing newer
	// masks a stale or lost batch).
	// Faults the children never met (a slow machine: kills before any send) are dropped, so
	// the fresh run's delivery is held to account on its own.
	if n := f.ClearFaults(); n > 0 {
		t.Logf("%d injected faults never met", n)
	}
	if _, err := rep.Flush(context.Background()); err != nil {
		t.Fatalf("flush of leftovers: %v", err)
	}
	entries, _ = os.ReadDir(filepath.Join(dir, "spool"))
	if len(entries) != 0 {
		t.Errorf("spool not empty after delivery: %v", entries)
	}
	checked := checkHubMatchesState(t, f, dir)
	if checked == 0 {
		t.Fatal("no finding checked")
	}
	for _, e := range f.Events("/ec2sec/findings", "i-0kkkkkkkkkkkkkkk9") {
		if !json.Valid([]byte(e.Message)) {
			t.Fatal("torn log event")
		}
	}
	if v := f.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}
	awsfake.ValidateBatchImportFindings(t, f.Bodies())
	for _, b := range f.AllBodies() {
		assertNoLeak(t, "request body", b)
	}
	assertDirNoLeak(t, dir)
	t.Logf("%d findings consistent after %d kills; %d imports, %d PutLogEvents", checked, kills, f.Calls(awsfake.OpBatchImportFindings), f.Calls(awsfake.OpPutLogEvents))
}
