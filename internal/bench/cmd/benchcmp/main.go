//go:build linux

// Command benchcmp is `make bench`: it builds the stripped binary, generates the large host
// fixture, times `ec2sec scan` over it against the gitleaks CLI on one 16 KB user-data file
// (hyperfine when installed, else its own repeated runs; medians either way), measures CPU
// time and peak RSS from wait4's rusage and /usr/bin/time -v, runs the Go
// benchmarks, the 100-scan growth test and, when the binary has a `run` command, the daemon's
// idle RSS and wake-ups, then prints PASS/MISS per target and writes BENCHMARKS.md.
//
// Everything stays on loopback: IMDS is a fake on 127.0.0.1 (hop limit 1), every AWS endpoint
// a closed loopback port (internal/testenv).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ec2sec/ec2sec/internal/bench"
	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

// Targets, from the benchmark issue.
const (
	maxRSSMiB       = 40
	maxCPUms        = 150
	maxBinaryMB     = 40
	maxDaemonRSSMiB = 20
	maxIMDSProbe    = time.Second
)

type measure struct {
	name                 string
	medianWall, meanWall time.Duration
	medianCPU            time.Duration // user + system
	peakRSS              int64         // KiB, the largest of all runs
	runs                 int
	tool                 string // what timed the wall clock
	timeV                bool   // /usr/bin/time -v confirmed the peak RSS
}

type report struct {
	when                       time.Time
	fleetCost                  string      // Markdown of the fleet cost simulation (fleetcost.go)
	centralFleet               string      // Markdown of the central-mode fleet simulation (centralfleet.go)
	imdsWatch                  watchResult // the IMDS watcher's section (imdswatch.go)
	machine                    []string
	loadBefore, loadAfter      string
	binSize                    int64
	ec2sec, hostOnly, gitleaks measure
	noSSH                      measure   // the fixture with no public sshd (nossh.go)
	ref                        refResult // an earlier commit's scan, timed beside (ref.go)
	ec2secCmd, gitleaksCmd     string
	goBench                    string
	imdsProbe                  time.Duration
	growth                     string
	growthOK                   bool
	daemon                     string
	daemonRSS                  int64 // KiB; -1 = not measured
	daemonWakeups              float64
	planted                    map[string]int
	found                      map[string]int
	quick                      bool
	root                       string
	corpus                     string // the per-shape recall section (corpus.go)
}

func main() {
	out := flag.String("out", "BENCHMARKS.md", "write the results to `FILE` (\"\" = stdout only)")
	runs := flag.Int("runs", 30, "timed runs per command")
	quick := flag.Bool("quick", false, "few runs and -benchtime=1x: check that the harness works, numbers mean little")
	corpusOnly := flag.Bool("corpus", false, "print only the per-shape recall section (secret corpus against the gitleaks CLI) and write nothing")
	watchOnly := flag.Bool("imdswatch-only", false, "run only the IMDS watcher's measurements (as root) and print them")
	ref := flag.String("ref", "", "also build the ec2sec of commit `REV` and time its scan beside this build's (the machine's speed then and now)")
	flag.Parse()
	if *corpusOnly {
		if err := printCorpus(); err != nil {
			fmt.Fprintf(os.Stderr, "benchcmp: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if *watchOnly {
		imdsWatchOnly(*quick)
		return
	}
	if *quick {
		*runs = 3
	}
	if err := run(*out, *runs, *quick, *ref); err != nil {
		fmt.Fprintf(os.Stderr, "benchcmp: %v\n", err)
		os.Exit(1)
	}
}

func run(out string, runs int, quick bool, ref string) error {
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "ec2sec-benchcmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	r := &report{when: time.Now().UTC(), quick: quick, daemonRSS: -1, root: repo}
	r.machine = machine()
	r.loadBefore = loadavg()

	step("building the stripped linux/amd64 binary")
	bin := filepath.Join(tmp, "ec2sec")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/ec2sec")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, b)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return err
	}
	r.binSize = fi.Size()

	step("generating the fixture")
	fix, err := bench.Build(filepath.Join(tmp, "fixture"))
	if err != nil {
		return fmt.Errorf("fixture: %w", err)
	}
	r.planted = fix.Planted

	imds, stop := fakeimds.Start(nil)
	defer stop()
	denyEC2 := bench.DenyEC2()
	defer denyEC2.Close()
	env := serviceEnv(testenv.Environ("AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL, "AWS_ENDPOINT_URL_EC2="+denyEC2.URL, "HOME="+tmp))

	gitleaks := findTool(repo, "gitleaks")
	if gitleaks == "" {
		return fmt.Errorf("gitleaks CLI not found in tools/bin or PATH (make tools)")
	}
	scanArgs := []string{bin, "scan", "--root", fix.Root, "--proc", fix.Proc, "--format", "json", "--config", filepath.Join(tmp, "none.yaml")}
	if err := os.WriteFile(filepath.Join(tmp, "none.yaml"), []byte("state_dir: "+filepath.Join(tmp, "state")+"\n"), 0o600); err != nil {
		return err
	}
	glArgs := []string{gitleaks, "dir", fix.UserData, "--no-banner", "--exit-code", "0", "--log-level", "error"}
	r.ec2secCmd = "ec2sec scan --root FIX/root --proc FIX/proc --format json"
	r.gitleaksCmd = "gitleaks dir FIX/root/var/lib/cloud/instances/<id>/user-data.txt (16 KB)"

	// What the scan finds, against what the fixture planted: a fast scan that finds nothing
	// would be no result.
	step("checking what the scan finds")
	found, err := scanFindings(scanArgs, env)
	if err != nil {
		return err
	}
	r.found = found

	step("recall per shape on the secret corpus")
	if r.corpus, err = corpusSection(repo, gitleaks, tmp, env); err != nil {
		return err
	}

	step("timing ec2sec and gitleaks")
	// The imds probe measures the hop limit by sending token requests whose answers a hop
	// limit of 1 drops; the scan is timed with and without it, to show what it adds.
	noIMDS := append(slices.Clone(scanArgs), "--probes", "userdata,credentials,ssm,sshd,network,console")
	ms, err := timeAll([][]string{scanArgs, noIMDS, glArgs}, env, runs, tmp)
	if err != nil {
		return err
	}
	r.ec2sec, r.hostOnly, r.gitleaks = ms[0], ms[1], ms[2]
	r.ec2sec.name = "ec2sec scan, all probes (full fixture)"
	r.hostOnly.name = "ec2sec scan, all probes but imds and ec2api (full fixture)"
	r.gitleaks.name = "gitleaks dir (one 16 KB file)"
	if ref != "" {
		step("timing the scan of " + ref + ", for reference")
		r.ref = refScan(repo, tmp, ref, noIMDS, env, runs)
	}
	step("timing ec2sec on a host with no public sshd")
	if r.noSSH, err = noPublicSSH(tmp, bin, filepath.Join(tmp, "none.yaml"), env, runs); err != nil {
		return err
	}

	benchtime := "10x"
	if quick {
		benchtime = "1x"
	}
	step("running the Go benchmarks (-benchtime=" + benchtime + ")")
	gb := exec.Command("go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime="+benchtime, "./probes/...", "./agent/")
	gb.Dir = repo
	b, err := gb.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go test -bench: %v\n%s", err, b)
	}
	r.goBench = benchLines(string(b))
	if m := regexp.MustCompile(`BenchmarkProbe/imds-\d+\s+\d+\s+(\d+) ns/op`).FindStringSubmatch(string(b)); m != nil {
		ns, _ := strconv.ParseInt(m[1], 10, 64)
		r.imdsProbe = time.Duration(ns)
	}

	step("100 scans: goroutines and open files")
	gt := exec.Command("go", "test", "-count=1", "-run", "^TestNoGrowthOver100Scans$", "-v", "./agent/")
	gt.Dir = repo
	gt.Env = append(os.Environ(), "EC2SEC_BENCH_FULL=1")
	b, err = gt.CombinedOutput()
	r.growthOK = err == nil
	if m := regexp.MustCompile(`goroutines \d+ -> \d+, open fds \d+ -> \d+ over 100 scans`).Find(b); m != nil {
		r.growth = string(m)
	} else {
		r.growth = "no result: " + lastLines(string(b), 5)
	}

	step("fleet telemetry cost: a simulated day of 1, 1,000 and 10,000 instances")
	r.fleetCost = fleetCost(repo, tmp, quick)
	step("central-mode fleet simulation (forwarder)")
	r.centralFleet = centralFleet(repo, tmp, quick)

	// The shipped agent unit cannot load the IMDS watcher (ec2sec-imdswatch.service holds
	// it), so the daemon's own target is measured without it; the watcher's, with it loaded.
	step("the run daemon: RSS between scans and idle wake-ups")
	d := daemon(bin, fix, env, tmp, quick, false)
	r.daemon, r.daemonRSS, r.daemonWakeups = d.text, d.rss, d.wakeups
	step("the run daemon with the IMDS watcher loaded")
	dw := daemon(bin, fix, env, tmp, quick, true)

	step("the IMDS watcher: cost to other traffic, 1,000 calls/s, the daemon with it")
	r.imdsWatch = imdsWatchBench(quick, dw.rss, dw.wakeups, dw.log)

	r.loadAfter = loadavg()
	text := r.markdown()
	fmt.Println()
	fmt.Print(r.summary())
	if out != "" {
		if !filepath.IsAbs(out) {
			out = filepath.Join(repo, out)
		}
		if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
			return err
		}
		fmt.Printf("\nwrote %s\n", out)
	}
	return nil
}

func step(s string) { fmt.Fprintf(os.Stderr, "benchcmp: %s\n", s) }

// printCorpus is -corpus: the per-shape section alone, on stdout.
func printCorpus() error {
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	gitleaks := findTool(repo, "gitleaks")
	if gitleaks == "" {
		return fmt.Errorf("gitleaks CLI not found in tools/bin or PATH (make tools)")
	}
	tmp, err := os.MkdirTemp("", "ec2sec-benchcmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	s, err := corpusSection(repo, gitleaks, tmp, serviceEnv(testenv.Environ()))
	if err != nil {
		return err
	}
	fmt.Print(s)
	return nil
}

func repoRoot() (string, error) {
	b, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func findTool(repo, name string) string {
	if p := filepath.Join(repo, "tools", "bin", name); isExec(p) {
		return p
	}
	p, _ := exec.LookPath(name)
	return p
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func machine() []string {
	var out []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				out = append(out, "CPU: "+strings.TrimSpace(strings.TrimLeft(v, "\t :")))
				break
			}
		}
	}
	out = append(out, fmt.Sprintf("logical CPUs: %d", runtime.NumCPU()))
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if l, _, ok := strings.Cut(string(b), "\n"); ok {
			out = append(out, "memory: "+strings.Join(strings.Fields(strings.TrimPrefix(l, "MemTotal:")), " "))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		out = append(out, "kernel: Linux "+strings.TrimSpace(string(b)))
	}
	out = append(out, "Go: "+runtime.Version())
	return out
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// scanFindings runs the scan once and counts FAILED results by check.
func scanFindings(args, env []string) (map[string]int, error) {
	c := exec.Command(args[0], args[1:]...)
	c.Env = env
	var stderr bytes.Buffer
	c.Stderr = &stderr
	b, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("ec2sec scan: %v: %s", err, lastLines(stderr.String(), 5))
	}
	var rep struct {
		Results []struct{ Check, Status string } `json:"results"`
		Probes  []struct {
			Name       string `json:"name"`
			DurationMS int64  `json:"duration_ms"`
		} `json:"probes"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("ec2sec scan output: %w", err)
	}
	found := map[string]int{}
	for _, p := range rep.Probes {
		found["probe:"+p.Name] = int(p.DurationMS)
	}
	for _, res := range rep.Results {
		if res.Status == "FAILED" {
			found[res.Check]++
		}
	}
	return found, nil
}

// timeAll times the commands: wall clock with hyperfine when installed (warm-up, medians),
// CPU and peak RSS per run from /usr/bin/time -v or wait4's rusage.
func timeAll(cmds [][]string, env []string, runs int, tmp string) ([]measure, error) {
	out := make([]measure, len(cmds))
	for i, c := range cmds {
		m, err := ownRuns(c, env, runs)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	hf, err := exec.LookPath("hyperfine")
	if err != nil {
		return out, nil // the medians of our own runs stand
	}
	js := filepath.Join(tmp, "hyperfine.json")
	args := []string{"-N", "--warmup", "3", "--runs", strconv.Itoa(runs), "--export-json", js}
	for _, c := range cmds {
		args = append(args, shellJoin(c))
	}
	c := exec.Command(hf, args...)
	c.Env = env
	if o, err := c.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("hyperfine: %v\n%s", err, o)
	}
	raw, err := os.ReadFile(js)
	if err != nil {
		return nil, err
	}
	var res struct {
		Results []struct {
			Mean   float64 `json:"mean"`
			Median float64 `json:"median"`
		} `json:"results"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || len(res.Results) != len(cmds) {
		return nil, fmt.Errorf("hyperfine output: %v", err)
	}
	for i := range out {
		out[i].medianWall = secs(res.Results[i].Median)
		out[i].meanWall = secs(res.Results[i].Mean)
		out[i].tool = "hyperfine -N --warmup 3"
	}
	return out, nil
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if strings.ContainsAny(a, " '\"\\$") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

var timeVRSS = regexp.MustCompile(`(?m)^\s*Maximum resident set size \(kbytes\): (\d+)`)

// ownRuns runs args n times (after one warm-up run): medians of wall and CPU time (user +
// system from wait4's rusage, in microseconds), the largest peak RSS; then once more under
// /usr/bin/time -v, when installed, whose "Maximum resident set size" counts too.
func ownRuns(args, env []string, n int) (measure, error) {
	m := measure{runs: n, tool: "repeated runs"}
	var walls, cpus []time.Duration
	run := func(argv []string) (time.Duration, *syscall.Rusage, string, error) {
		c := exec.Command(argv[0], argv[1:]...)
		c.Env = env
		c.Stdout = io.Discard
		var stderr bytes.Buffer
		c.Stderr = &stderr
		start := time.Now()
		err := c.Run()
		wall := time.Since(start)
		if err != nil {
			return 0, nil, "", fmt.Errorf("%s: %v: %s", argv[0], err, lastLines(stderr.String(), 5))
		}
		ru, _ := c.ProcessState.SysUsage().(*syscall.Rusage)
		return wall, ru, stderr.String(), nil
	}
	for i := 0; i < n+1; i++ {
		wall, ru, _, err := run(args)
		if err != nil {
			return m, err
		}
		if i == 0 || ru == nil {
			continue // the first run warms the page cache
		}
		walls = append(walls, wall)
		cpus = append(cpus, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()))
		m.peakRSS = max(m.peakRSS, ru.Maxrss)
	}
	m.medianWall, m.medianCPU = median(walls), median(cpus)
	var sum time.Duration
	for _, w := range walls {
		sum += w
	}
	m.meanWall = sum / time.Duration(len(walls))
	if timeBin := "/usr/bin/time"; isExec(timeBin) {
		_, _, stderr, err := run(append([]string{timeBin, "-v"}, args...))
		if err != nil {
			return m, err
		}
		if g := timeVRSS.FindStringSubmatch(stderr); g != nil {
			rss, _ := strconv.ParseInt(g[1], 10, 64)
			m.peakRSS = max(m.peakRSS, rss)
			m.timeV = true
		}
	}
	return m, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// daemon measures `ec2sec run` when the binary has it: RSS after its first scan, and
// context switches (wake-ups) over an idle window between scans. It returns the daemon's log
// (the IMDS watcher's section reads it). watch lets it load the IMDS watcher, as it does as
// root; without, the watcher is disabled in its config, as under the shipped unit (which
// lacks CAP_BPF) it stays unloaded.
func daemon(bin string, fix *bench.Fixture, env []string, tmp string, quick, watch bool) (r daemonRun) {
	r.rss = -1
	help := exec.Command(bin, "run", "--help")
	help.Env = env
	var hb bytes.Buffer
	help.Stdout, help.Stderr = &hb, &hb
	if err := help.Run(); err != nil {
		r.text = "skipped: no run command in this build"
		return
	}
	args := []string{"run"}
	if strings.Contains(hb.String(), "-root") {
		args = append(args, "--root", fix.Root)
	}
	if strings.Contains(hb.String(), "-proc") {
		args = append(args, "--proc", fix.Proc)
	}
	if strings.Contains(hb.String(), "-config") {
		// No splay: the first scan comes at once, so the window below is between scans. No
		// sinks: with the endpoints a closed port every delivery would fail and its retries
		// (a worker each) land in the window, which an agent whose endpoints answer never sees.
		name := "daemon"
		if watch {
			name = "daemon-watch"
		}
		cfg := filepath.Join(tmp, name+".yaml")
		body := "splay: 0s\nstate_dir: " + filepath.Join(tmp, name+"-state") + "\ncloudwatch_logs: {log_group: \"\"}\nsecurity_hub: {enabled: false}\n"
		if !watch {
			body += "probes: {disable: [imdswatch]}\n"
		}
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			r.text = "could not write its config: " + err.Error()
			return
		}
		args = append(args, "--config", cfg)
	}
	c := exec.Command(bin, args...)
	c.Env = env
	var errBuf bytes.Buffer
	c.Stdout, c.Stderr = io.Discard, &syncWriter{w: &errBuf}
	defer func() { r.log = c.Stderr.(*syncWriter).String() }()
	if err := c.Start(); err != nil {
		r.text = "could not start: " + err.Error()
		return
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	defer func() {
		c.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			<-done
		}
	}()
	settle, idle := 15*time.Second, 30*time.Second
	if quick {
		settle, idle = 5*time.Second, 5*time.Second
	}
	// Wait for the first scan to be done (its log line), then let the daemon settle.
	scanned := func() bool {
		return strings.Contains(c.Stderr.(*syncWriter).String(), `"msg":"scan done"`)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !scanned() {
		select {
		case err := <-done:
			done <- err
			r.text = fmt.Sprintf("exited before measuring (%v): %s", err, lastLines(c.Stderr.(*syncWriter).String(), 3))
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.text = "no scan within 2 minutes: " + lastLines(c.Stderr.(*syncWriter).String(), 3)
			return
		}
	}
	time.Sleep(settle)
	pid := c.Process.Pid
	status := fmt.Sprintf("/proc/%d/status", pid)
	rss0, sw0 := procStatus(status)
	kids0 := children(pid)
	time.Sleep(idle)
	rss1, sw1 := procStatus(status)
	kids := max(kids0, children(pid))
	if rss0 < 0 || rss1 < 0 {
		r.text = "could not read " + status
		return
	}
	r.rss = max(rss0, rss1)
	r.wakeups = float64(sw1-sw0) / idle.Seconds()
	if kids != 0 {
		r.rss = -1 // a worker left running: what is resident is more than the daemon
	}
	anon, file := rssSplit(status)
	r.text = fmt.Sprintf("`ec2sec %s`: RSS %s from %s after its first scan (anonymous %s, the binary's own file-backed code pages %s), %d child processes, %d context switches over the next %s (%.2f/s)",
		strings.Join(args, " "), mib(max(rss0, rss1)), settle, mib(anon), mib(file), kids, sw1-sw0, idle, r.wakeups)
	if !watch {
		r.text += " (the IMDS watcher disabled in its config: under the shipped unit it runs in ec2sec-imdswatch.service)"
	}
	if w := workerCost(c.Stderr.(*syncWriter).String()); w != "" {
		r.text += "; " + w
	}
	return
}

// daemonRun is what daemon measured: text for the report, RSS (KiB, -1 = not measured),
// context switches per second while idle, and the daemon's log.
type daemonRun struct {
	text    string
	rss     int64
	wakeups float64
	log     string
}

// children counts the processes whose parent is pid (-1 when unknown).
func children(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return -1
	}
	return len(strings.Fields(string(b)))
}

// workerCost reads what the daemon logged of its first scan worker: CPU and peak RSS, which
// the host paid during the scan and got back when the worker exited.
func workerCost(logs string) string {
	for l := range strings.Lines(logs) {
		var m struct {
			Msg    string  `json:"msg"`
			Mode   string  `json:"mode"`
			CPU    float64 `json:"cpu_ms"`
			MaxRSS float64 `json:"max_rss_kib"`
		}
		if json.Unmarshal([]byte(l), &m) == nil && m.Msg == "worker done" && m.Mode == "cycle" {
			return fmt.Sprintf("its scan worker (a child process, gone after the scan) used %.0f ms of CPU and at most %s", m.CPU, mib(int64(m.MaxRSS)))
		}
	}
	return ""
}

// syncWriter is a buffer written by a child's output copier and read by the measurer.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// rssSplit returns RssAnon and RssFile (KiB): file-backed pages are the binary's code, shared
// and reclaimable, so they say little about what the agent itself holds.
func rssSplit(status string) (anon, file int64) {
	b, err := os.ReadFile(status)
	if err != nil {
		return -1, -1
	}
	for l := range strings.Lines(string(b)) {
		for key, dst := range map[string]*int64{"RssAnon:": &anon, "RssFile:": &file} {
			if v, ok := strings.CutPrefix(l, key); ok {
				if f := strings.Fields(v); len(f) > 0 {
					*dst, _ = strconv.ParseInt(f[0], 10, 64)
				}
			}
		}
	}
	return anon, file
}

// procStatus returns VmRSS (KiB) and voluntary + nonvoluntary context switches of all threads
// (the status of the thread group leader sums only itself, so read every task).
func procStatus(status string) (rss int64, switches int64) {
	rss = -1
	b, err := os.ReadFile(status)
	if err != nil {
		return -1, 0
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			rss, _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	tasks, _ := filepath.Glob(filepath.Join(filepath.Dir(status), "task", "*", "status"))
	for _, t := range tasks {
		tb, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for l := range strings.Lines(string(tb)) {
			for _, k := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
				if v, ok := strings.CutPrefix(l, k); ok {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					switches += n
				}
			}
		}
	}
	return rss, switches
}

func benchLines(s string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "pkg:") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], " | ")
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

type target struct{ what, want, got, verdict string }

func (r *report) targets() []target {
	ratio := float64(r.hostOnly.medianWall) / float64(r.gitleaks.medianWall)
	ratioAll := float64(r.ec2sec.medianWall) / float64(r.gitleaks.medianWall)
	peakRSS := max(r.ec2sec.peakRSS, r.hostOnly.peakRSS)
	ts := []target{
		{"full fixture scan (all probes but imds and ec2api), median wall vs gitleaks CLI on one 16 KB file", "≤ 1.0×",
			fmt.Sprintf("%s vs %s = %.2f×", ms(r.hostOnly.medianWall), ms(r.gitleaks.medianWall), ratio), verdict(ratio <= 1.0)},
		{"full fixture scan (all probes), median wall vs gitleaks CLI on one 16 KB file", "≤ 1.0×",
			fmt.Sprintf("%s vs %s = %.2f×", ms(r.ec2sec.medianWall), ms(r.gitleaks.medianWall), ratioAll), verdict(ratioAll <= 1.0)},
		{"peak RSS of the scan (largest of all runs, with and without imds and ec2api)", fmt.Sprintf("≤ %d MiB", maxRSSMiB),
			fmt.Sprintf("%s (gitleaks: %s)", mib(peakRSS), mib(r.gitleaks.peakRSS)), verdict(peakRSS <= maxRSSMiB*1024)},
		{"CPU time (user + system) per scan, median, all probes", fmt.Sprintf("≤ %d ms", maxCPUms),
			fmt.Sprintf("%s; without imds and ec2api %s (gitleaks: %s)", ms(r.ec2sec.medianCPU), ms(r.hostOnly.medianCPU), ms(r.gitleaks.medianCPU)), verdict(r.ec2sec.medianCPU <= maxCPUms*time.Millisecond)},
		{"CPU time per scan, median, host with no public sshd (every process's sockets walked; all probes but imds and ec2api)", fmt.Sprintf("≤ %d ms", maxCPUms),
			fmt.Sprintf("%s (wall %s)", ms(r.noSSH.medianCPU), ms(r.noSSH.medianWall)), verdict(r.noSSH.medianCPU <= maxCPUms*time.Millisecond)},
		{"goroutines and open fds over 100 scans", "no growth", r.growth, verdict(r.growthOK)},
		{"imds probe with hop limit 1", "≤ 1 s", ms(r.imdsProbe), verdict(r.imdsProbe > 0 && r.imdsProbe <= maxIMDSProbe)},
		{"stripped linux/amd64 binary", fmt.Sprintf("≤ %d MB", maxBinaryMB),
			fmt.Sprintf("%.1f MB (%d bytes)", float64(r.binSize)/1e6, r.binSize), verdict(r.binSize <= maxBinaryMB*1e6)},
	}
	d := target{"`run` daemon: RSS between scans, idle wake-ups", fmt.Sprintf("≤ %d MiB, none while idle", maxDaemonRSSMiB), r.daemon, "SKIP"}
	if r.daemonRSS >= 0 {
		d.verdict = verdict(r.daemonRSS <= maxDaemonRSSMiB*1024 && r.daemonWakeups < 1)
	}
	return append(append(ts, d), r.imdsWatch.targets...)
}

func (r *report) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s %-62s %s\n", "", "target", "measured")
	for _, t := range r.targets() {
		fmt.Fprintf(&b, "%-5s %-62s %s (want %s)\n", t.verdict, t.what, t.got, t.want)
	}
	fmt.Fprintf(&b, "load average before/after: %s / %s\n", r.loadBefore, r.loadAfter)
	return b.String()
}

func (r *report) markdown() string {
	var b strings.Builder
	b.WriteString("# ec2sec benchmarks\n\n")
	b.WriteString("Written by `make bench` (`go run ./internal/bench/cmd/benchcmp`); do not edit by hand.\n")
	if r.quick {
		b.WriteString("\n**Quick run (`-quick`): a few runs only; these numbers mean little.**\n")
	}
	fmt.Fprintf(&b, "\n## Machine\n\n- run at %s\n", r.when.Format(time.RFC3339))
	for _, m := range r.machine {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	fmt.Fprintf(&b, "- load average (1, 5, 15 min) before: %s, after: %s. The machine is shared: wall times\n  under load are longer than on an idle instance; CPU time and RSS move much less.\n", r.loadBefore, r.loadAfter)
	if r.ref.rev != "" {
		b.WriteString(r.ref.markdown(r.hostOnly))
	}

	b.WriteString("\n## Targets\n\n| | target | wanted | measured |\n|---|---|---|---|\n")
	for _, t := range r.targets() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.verdict, t.what, t.want, t.got)
	}

	b.WriteString("\n## Whole process: ec2sec against the gitleaks CLI\n\n")
	fmt.Fprintf(&b, "- ec2sec: `%s`, all probes, IMDS a fake on loopback (IMDSv2, hop limit 1), the EC2 API a loopback stand-in refusing every call (UnauthorizedOperation, as for a role without the optional EC2 statement), the other AWS endpoints a closed loopback port. Both commands run without the build shell's AWS_CA_BUNDLE (the system CA bundle, which the SDK would parse for about 2 ms of CPU a scan, for TLS no loopback peer uses); the agent's systemd unit has no such variable either.\n", r.ec2secCmd)
	fmt.Fprintf(&b, "- gitleaks: `%s`, gitleaks v8.30.1 (`make tools`).\n", r.gitleaksCmd)
	b.WriteString("- the imds probe measures the hop limit with token requests whose answers a hop limit of 1 drops: the socket's own drop count (SO_MEMINFO, Linux 4.7+) tells a drop as the answer arrives, an older kernel only after a timeout (20 round trips, at least 150 ms, confirmed once). The scan is also timed without it and the ec2api probe, which need a live instance (`--probes` all but imds and ec2api).\n")
	fmt.Fprintf(&b, "- wall clock: %s, %d runs each after warm-up. CPU: user + system time from wait4's rusage of each of %d runs (microseconds; `/usr/bin/time -v` rounds to 10 ms), median. Peak RSS: the largest maximum resident set size of those runs and of one more under `/usr/bin/time -v`.\n\n", r.ec2sec.tool, r.ec2sec.runs, r.ec2sec.runs)
	b.WriteString("| command | median wall | mean wall | median CPU | peak RSS |\n|---|---|---|---|---|\n")
	rows := []measure{r.ec2sec, r.hostOnly, r.noSSH, r.gitleaks}
	if r.ref.m.runs > 0 {
		rows = append(rows, r.ref.m)
	}
	for _, m := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", m.name, ms(m.medianWall), ms(m.meanWall), ms(m.medianCPU), mib(m.peakRSS))
	}
	for _, m := range []measure{r.ec2sec, r.hostOnly} {
		fmt.Fprintf(&b, "\nRatio of medians, %s / gitleaks: wall %.2f×, CPU %.2f×, peak RSS %.2f×.\n", m.name,
			float64(m.medianWall)/float64(r.gitleaks.medianWall),
			float64(m.medianCPU)/float64(max(r.gitleaks.medianCPU, 1)),
			float64(m.peakRSS)/float64(max(r.gitleaks.peakRSS, 1)))
	}

	b.WriteString(r.corpus)

	b.WriteString("\n## The fixture\n\nGenerated at bench time by `internal/bench` (never committed): 200 users, each with\n`~/.aws/credentials` and `config`, `.bashrc`, `.profile` and a 6 KB shell history of its own;\n2,000 processes with `status`, `comm`, `cmdline`, `exe` and a 1-3 KB environment; three 16 KB\ncached user-data scripts (cloud-init, this instance and two earlier ones); sshd_config with\nincludes (one nested) and Match blocks; units, profile snippets, the SSM agent and a 256 KB log. sshd listens on 0.0.0.0:22, so the sshd\nprobe settles on sshd's own sockets. The second fixture (`bench.FullNoPublicSSH`, `benchfix\n-no-public-ssh`) is the same host with sshd on 127.0.0.1:22 only, nginx on 0.0.0.0:80, and 5-9\nfile descriptors a process (a log, a pipe, sockets): nothing public is SSH's, which only a walk\nof every process's descriptors can say.\n\n")
	b.WriteString("| check | planted | FAILED results |\n|---|---|---|\n")
	keys := make([]string, 0, len(r.planted))
	for k := range r.planted {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "| %s | %d | %d |\n", k, r.planted[k], r.found[k])
	}

	b.WriteString("\n## Go benchmarks\n\n`go test -run '^$' -bench . -benchmem ./probes/... ./agent/` (per probe over the fixture, the\nfull scan with and without a kept detector, building the detector, scanning one 16 KB text):\n\n```\n")
	b.WriteString(r.goBench)
	b.WriteString("```\n")
	fmt.Fprintf(&b, "\n100 consecutive scans with one detector (`TestNoGrowthOver100Scans`): %s.\n", r.growth)
	fmt.Fprintf(&b, "\nDaemon: %s.\n", r.daemon)
	b.WriteString("\n## Fleet telemetry: API calls, bytes, custom metrics, monthly cost\n\n" + r.fleetCost)
	b.WriteString("\n## Central mode at fleet scale: the forwarder within Security Hub's limit\n\n" + r.centralFleet)
	b.WriteString("\n## IMDS watcher (eBPF)\n\nMeasured in the benchcmp process as root (docs/imds-watch.md):\n\n" + r.imdsWatch.markdown)
	b.WriteString(optimisations)
	return b.String()
}

const optimisations = `
## What was done to get here

Measured before the work below, on this machine: a full scan of the same fixture took about
380 ms of CPU and 46 MiB peak RSS (and 1.5 s of wall time off EC2: see the IMDS retry below).

- **Secret rules run only where they can match** (probes/secrets/window.go). Go's regexp has
  no literal prefix to skip to for most rules, so a rule that runs at all walks the whole
  text, and "key", "token" and "curl" are in nearly every shell history. Each costly gitleaks
  rule now has its own detector: generic-api-key and curl-auth-* run over line windows after
  their keywords (curl only where the window also holds what the match must), jwt only on
  texts holding ".ey"; aws-access-token is dropped (its findings were discarded: our AWS
  pairing sees every key id). Our own line-bound rules and the AWS key patterns run over the
  lines holding their keywords (and a second literal each match must hold). Tests hold the
  findings equal to whole-text scanning. One 16 KB user-data script: 8 ms -> 2.4 ms.
- **Stop words as lists, not tries**: gitleaks builds an Aho-Corasick trie per allowlist with
  stop words, 9 of the detector's 14 MiB for generic-api-key's 1,500 words. They are kept as
  lists, which gitleaks' ContainsStopWord checks with strings.Contains (same answer, only run
  on a candidate secret). Detector: 14 -> 5.7 MiB live, 25 -> 16 MiB allocated to build.
- **One process list per scan** (procfs.Table, Env.Procs): the ssm, console and imds probes
  each read the comm file of every process.
- **Fewer system calls**: procfs reads with raw open/fstat/read/close into one reused buffer
  (os.OpenFile added an fcntl and a failing epoll registration per file, io.ReadAll a read
  per doubling); fd directories listed with getdents; hostfs reuses its walk's last lstat
  instead of stat'ing again, and the credentials probe walks each path once, not twice;
  shell histories are read into a buffer sized from their stat.
- **Each distinct file content is scanned once per scan**: skeleton files (.bashrc, .profile,
  .aws/config) are the same bytes in most homes; their findings (which hold no secret) are
  reused by SHA-256 of the content. Process environments are read alongside the files.
- **IMDS retry within 50 ms**: the SDK's imds client wrapped our retryer in a backoff of up to
  1 s, so every scan off EC2 waited out its whole 1 s timeout on a refused connection.
- **GC**: a scan allocates ~15 MiB once while its live heap stays a few MiB, so it collects
  rarely (GOGC 400) under a 24 MiB soft limit: ~5 ms less CPU, peak RSS ~33 MiB, and the
  limit bounds the worst case (GOGC and GOMEMLIMIT override both).
- **Binary**: -trimpath -ldflags '-s -w'; only the SDK parts used are linked.

Then, to about 80 ms of CPU and 50 ms of wall time:

- **The detector is built lazily** (probes/secrets/gitleaks.go, keywords.go): gitleaks' config is decoded with
  go-toml (no viper, no mapstructure), and each rule is compiled the first time a text holds
  one of its keywords, found for all rules (gitleaks' and ours) in one pass over the text.
  Building a detector: 15.6 ms and 16 MiB allocated -> 1 ms and 1.3 MiB; live: 5.7 -> 0.6 MiB.
  Tests hold its findings (and gitleaks' raw candidates) equal to the eager detector's.
- **The kernel resolves names in the root** (probes/hostfs/fast_linux.go): openat2
  RESOLVE_IN_ROOT against a root descriptor held for the scan, a home's files looked at through
  one held directory, raw reads; the userspace walk stays the fallback and the reference
  (tests run every case both ways). procfs: no fstat on a mounted procfs, one pid listing
  for processes and sockets. (It also skipped the 0-byte getdents after a read that left room
  in its buffer; a signal ends a directory read early, so that lost fd entries, and the
  skip was taken out.)
  System calls per scan: 58,929 -> 38,316.
- **Lowercasing eight bytes at a time**: strings.ToLower was a third of a shell history's
  scan, and every process environment is lowercased too.
- **The hop limit without timeouts**: a dropped token answer is seen on the kernel's
  TCPMinTTLDrop counter instead of waited for: the imds probe with hop limit 1 went from
  600 ms to ~25 ms.
- **The daemon scans in workers**: each cycle runs in a child process, so between scans only
  the scheduler (~18 MiB, two thirds of it shared code pages) stays resident.
- **The imds probe asks at once**: IMDSv1, the hop limit and iam/info concurrently, and the
  hop limit's final failure is two attempts sent together (two drops counted) instead of an
  attempt and a confirmation, the first pair alongside the baseline PUT: the probe went from
  27 to 13 ms, and the full scan's median wall time from 92.5 to about 62 ms.
- **The grace after a drop from the kernel's RTT**: it was sized from the time the baseline PUT
  took, which a scan that keeps both cores busy inflates to tens of milliseconds (so the grace
  was always its 25 ms cap); the kernel's RTT of that connection (TCP_INFO) is the network's,
  and the grace is 10 ms: the full scan went to about 55 ms.
- **IMDS first**: the identity is asked while the secret detector is built, and the host-only
  probes wait for it (at most 50 ms). Started before it, they kept both cores busy, and Go's
  scheduler looks at the network only every 10 ms when no core is free: the identity took
  20-50 ms instead of about 2.

Then, to about 68 ms of CPU and 40 ms of wall time (with every probe):

- **Sockets: the likely owners first** (probes/procfs/table.go, probes/sshd.go): the fd walk
  over every process was the costliest read of a scan (four system calls a process). The
  processes that can make a listener SSH's (named sshd; systemd and pid 1 when an ssh.socket
  is enabled) are walked first; every process only when their answer is not settled (nothing
  public, or a listener on sshd's configured port unexplained), so a PASS still speaks for
  all. The ssm probe reads exe links only when no process is named amazon-ssm-agent.
  System calls per scan: 31,000 -> 20,800; CPU 97 -> 76 ms.
- **Two readers in the credentials probe**: the files, then the process environments, are
  shared by two readers (GOMAXPROCS at most) taking 16 at a time; what each gave is added up
  in queue order, so results and the dedupe by resolved path are those of one reader. A
  goroutine of its own for the environments started late behind busy cores and finished
  last.
- **IMDS round trips that do not wait for Go's network poller** (probes/metadata/dialer.go):
  with every core busy, Go looks at the poller only when a core runs out of work or every
  10 ms (sysmon), and the imds probe's round trips queued there: the hop limit took 17-35 ms
  in a scan for 13 ms alone. IMDS connections wait on the poller and on a short timer both
  (timers are served at every scheduling point), and each hop-limit attempt reads its own
  socket's drop count (SO_MEMINFO: a segment dropped for its minimum TTL, Linux 4.7+) instead
  of the namespace-wide TCPMinTTLDrop counter, so a dropped answer is known as it arrives,
  with no second attempt and no grace: the imds probe went from 13 ms to under 1 ms, and
  ends long before the host probes.
- **generic-api-key only around keywords it can match**: a keyword counts only when
  [ \t\w.-]{0,20}[\s'"]{0,3} leads from it to an assignment's first character (a test
  holds this to every match of the regex over 60,000 random lines).
- **Memory used again**: each reader reads every file into one buffer and scans it in place;
  the detector lowercases into pooled memory (a scan touched ~20 MiB of fresh pages, a page
  fault per 4 KiB).
- **AWS_CA_BUNDLE**: this machine's shell points it at the whole system bundle, which the SDK
  parses (about 2 ms of CPU) when the ec2api probe loads its config; benchcmp runs both
  commands without it, as the agent's unit does.

What is left is mostly the kernel's: two files a process (comm, environ: three system calls
each) for 2,000 processes, a thousand home files, and about 5,000 page faults, plus package
initialisation (about 3 ms, most of it gitleaks' dependencies). Measured and not done (before
the changes above): GOMAXPROCS 3 (~9 ms less wall then, ~7 ms more CPU; no gain now); at most
two host probes at a time (tokens per probe held across waits); GOGC 100-800 (100 and 200
cost more CPU; 400 and up alike).
`

// serviceEnv is env without what a shell of this build machine exports and the agent's
// systemd unit does not give it: AWS_CA_BUNDLE, here the system's whole CA bundle, which the
// SDK parses when it loads its config (about 2 ms of CPU a scan) for TLS that the loopback
// peers never use.
func serviceEnv(env []string) []string {
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "AWS_CA_BUNDLE=") })
}
