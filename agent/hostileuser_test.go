//go:build linux

package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
)

// TestHostileUserExhaustion: what any local user can write into their own home, aimed at
// the scanner: two 250 KB shell histories of password=<random> lines (about 20,000 findings)
// and a 1 MiB keyword-dense .bashrc. The binary's scan answers every check (only the live
// ones, without a procfs here, say NOT_AVAILABLE), reports a bounded number of findings with
// a WARNING saying what was cut, quotes none of the planted passwords, and stays under the
// same peak RSS bound as TestHostileHost. (The old scan gave 19,699 results.) Its wall time
// and RSS are logged, not asserted: they are figures, not targets a shared machine can hold.
func TestHostileUserExhaustion(t *testing.T) {
	testenv.System(t) // builds the binary
	base, err := os.MkdirTemp("", "ec2sec-exhaust-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	root := filepath.Join(base, "root")
	var pws []string
	var h strings.Builder
	for h.Len() < 250<<10 {
		pw := testenv.RandString(t, 16, testenv.Alnum)
		if len(pws) < 50 {
			pws = append(pws, pw)
		}
		h.WriteString("password=" + pw + "\n")
	}
	var d strings.Builder
	words := []string{"password", "secret", "token", "api_key", "passwd", "aws_secret_access_key", "client_secret", "auth", "key", "credential"}
	for i := 0; d.Len() < 1<<20; i++ {
		d.WriteString(words[i%len(words)])
		d.WriteString(" =\n"[i%3 : i%3+1])
	}
	writeFile(t, root, "etc/passwd", "root:x:0:0::/root:/bin/sh\na:x:1000:1000::/home/a:/bin/sh\nb:x:1001:1001::/home/b:/bin/sh\n", 0o644)
	writeFile(t, root, "home/a/.bash_history", h.String(), 0o600)
	writeFile(t, root, "home/b/.zsh_history", strings.ReplaceAll(h.String(), "password=", "export DB_PASSWORD="), 0o600)
	writeFile(t, root, "home/b/.bashrc", d.String(), 0o644)

	bin := buildBinary(t, base)
	conf := filepath.Join(base, "config.yaml")
	os.WriteFile(conf, []byte("state_dir: "+filepath.Join(base, "state")+"\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), hostileHangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "scan", "--root", root, "--format", "json", "--config", conf)
	cmd.Env = testenv.Environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var hwm atomic.Int64
	exited, polled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(polled)
		for {
			if kb := vmHWM(cmd.Process.Pid); kb > hwm.Load() {
				hwm.Store(kb)
			}
			select {
			case <-exited:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	err = cmd.Wait()
	close(exited)
	<-polled
	if ctx.Err() != nil {
		t.Fatalf("the scan hangs: killed after %s", hostileHangGuard)
	}
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	rss := hwm.Load() << 10
	t.Logf("wall %s, CPU user %s sys %s, peak RSS %d MiB", time.Since(start).Round(time.Millisecond), time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), rss>>20)
	if rss > hostileRSSBound {
		t.Errorf("peak RSS %d MiB, bound %d MiB", rss>>20, hostileRSSBound>>20)
	}
	for _, pw := range pws {
		if bytes.Contains(stdout.Bytes(), []byte(pw)) || bytes.Contains(stderr.Bytes(), []byte(pw)) {
			t.Fatal("a planted password reached the output")
		}
	}
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	count := map[string]map[probes.Status]int{}
	for _, res := range r.Results {
		if count[res.Check] == nil {
			count[res.Check] = map[probes.Status]int{}
		}
		count[res.Check][res.Status]++
	}
	t.Logf("%d results: %v", len(r.Results), count)
	if len(r.Results) > 150 {
		t.Errorf("%d results: the findings are not bounded", len(r.Results))
	}
	if n := count["secret-in-local-file"][probes.Failed]; n == 0 || n > 60 {
		t.Errorf("secret-in-local-file: %d findings, want 1 to 60 (20 a file)", n)
	}
	if count["secret-in-local-file"][probes.Warning] != 1 {
		t.Errorf("secret-in-local-file: want one WARNING saying what was cut, got %v", count["secret-in-local-file"])
	}
	for _, p := range r.Probes {
		if p.Status == "timeout" || p.Status == "panic" || (p.Name == "credentials" && p.Status != "ok") {
			t.Errorf("probe %s: %s %s", p.Name, p.Status, p.Error)
		}
	}
	for _, c := range (probes.CredentialsProbe{}).Checks() {
		if c.ID == "cred-process-env" {
			continue // no procfs: an offline image
		}
		if count[c.ID][probes.NotAvailable] > 0 || len(count[c.ID]) == 0 {
			t.Errorf("%s not answered: %v %s", c.ID, count[c.ID], fmt.Sprint(reasons(&r, c.ID)))
		}
	}
}
