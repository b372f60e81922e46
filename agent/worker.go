package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"time"
)

// Why workers: a scan builds the secret detector, reads thousands of files and holds the
// AWS SDK clients; the Go runtime keeps much of that memory mapped long after. Run as a
// child process of its own, a cycle hands all of it back to the host when it exits, a
// stuck or runaway cycle can be killed without killing the agent, and between scans only
// the scheduler (a few MiB) stays resident on every instance of the fleet.
//
// The protocol is private to one binary: the daemon starts `<exe> run --worker`, writes one
// JSON workerRequest line on its stdin and keeps stdin open; closing it asks the worker to
// stop (so a worker never outlives its daemon). The worker logs JSON lines on stderr, which
// the daemon passes on, and writes one JSON workerResult line on stdout before it exits 0.

// selfExe is where Linux shows a process its own executable.
const selfExe = "/proc/self/exe"

// Worker modes.
const (
	workerCycle = "cycle" // scan, spool, deliver
	workerFlush = "flush" // deliver what is spooled
)

// workerRequest is what the daemon asks of one worker.
type workerRequest struct {
	Mode   string        `json:"mode"`
	Config Config        `json:"config"` // the daemon's config: a worker never reads the file
	Root   string        `json:"root"`
	Proc   string        `json:"proc"`
	Budget time.Duration `json:"budget"` // flush only
}

// workerResult is what a worker did.
type workerResult struct {
	Spooled SpoolStats `json:"spooled"`
	Flushed FlushStats `json:"flushed"`
	Err     string     `json:"err,omitempty"`
	// NoReporter says the spool could not be opened (errNoReporter).
	NoReporter bool `json:"no_reporter,omitempty"`
}

// Hard limits on a worker's life, past the budgets it keeps itself, after which the daemon
// kills it: a cycle's scan has per-probe deadlines, then spool and a 5-minute flush.
const (
	cycleLimit  = 15 * time.Minute
	workerGrace = 30 * time.Second // after stdin is closed (stop), before the kill (children.grace)
	maxRequest  = 1 << 20
	maxResult   = 1 << 20
)

// children runs each piece of the daemon's work in a worker process.
type children struct {
	exe        string
	root, proc string
	log        *slog.Logger
	out        io.Writer     // the workers' stderr; nil = the daemon's log sees only its own lines
	grace      time.Duration // 0 = workerGrace (tests shorten it)
}

func (ch *children) reload(Config) error { return nil } // the next worker gets the new config

func (ch *children) cycle(ctx context.Context, cfg Config) cycle {
	res, err := ch.run(ctx, workerRequest{Mode: workerCycle, Config: cfg}, cycleLimit)
	if err != nil {
		ch.log.Error("scan worker failed", "err", err)
		return cycle{err: err}
	}
	return cycle{spooled: res.Spooled, flushed: res.Flushed, err: res.err()}
}

func (ch *children) flush(ctx context.Context, cfg Config, budget time.Duration) (FlushStats, error) {
	res, err := ch.run(ctx, workerRequest{Mode: workerFlush, Config: cfg, Budget: budget}, budget+workerGrace)
	if err != nil {
		ch.log.Error("delivery worker failed", "err", err)
		return FlushStats{}, err
	}
	return res.Flushed, res.err()
}

func (r workerResult) err() error {
	switch {
	case r.NoReporter:
		return errNoReporter
	case r.Err != "":
		return errors.New(r.Err)
	}
	return nil
}

// run starts one worker and waits for its result. ctx done closes the worker's stdin (it
// stops, as on SIGTERM); limit, or workerGrace after ctx is done, kills it.
func (ch *children) run(ctx context.Context, req workerRequest, limit time.Duration) (workerResult, error) {
	req.Root, req.Proc = ch.root, ch.proc
	line, err := json.Marshal(req)
	if err != nil {
		return workerResult{}, fmt.Errorf("worker request: %w", err)
	}
	cmd := exec.Command(ch.exe, "run", "--worker")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return workerResult{}, fmt.Errorf("worker stdin: %w", err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &stdout, n: maxResult}
	cmd.Stderr = ch.out
	if cmd.Stderr == nil {
		cmd.Stderr = io.Discard
	}
	if err := cmd.Start(); err != nil {
		return workerResult{}, fmt.Errorf("start worker %s: %w", ch.exe, err)
	}
	// The pipe is larger than a request, so this write does not wait for the worker.
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		ch.log.Warn("worker request not written", "err", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	kill := time.NewTimer(limit)
	defer kill.Stop()
	stopping := ctx.Done()
	var waitErr error
wait:
	for {
		select {
		case waitErr = <-done:
			break wait
		case <-stopping:
			stdin.Close()
			stopping = nil
			grace := ch.grace
			if grace <= 0 {
				grace = workerGrace
			}
			kill.Reset(grace)
		case <-kill.C:
			ch.log.Error("worker over its time limit; killing it", "mode", req.Mode, "pid", cmd.Process.Pid)
			cmd.Process.Kill()
			waitErr = <-done
			break wait
		}
	}
	stdin.Close()
	if ps := cmd.ProcessState; ps != nil {
		// What a cycle costs the host, for whoever watches the agent's own footprint.
		ch.log.Info("worker done", "mode", req.Mode, "pid", ps.Pid(), "exit", ps.ExitCode(),
			"cpu_ms", (ps.UserTime() + ps.SystemTime()).Milliseconds(), "max_rss_kib", maxRSSKiB(ps))
	}
	var res workerResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		if waitErr != nil {
			return workerResult{}, fmt.Errorf("worker %s: %w", req.Mode, waitErr)
		}
		return workerResult{}, fmt.Errorf("worker %s: no result: %w", req.Mode, err)
	}
	return res, nil
}

// limitedWriter keeps at most n bytes and drops the rest (a worker's result is one line).
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		l.w.Write(p[:k])
	}
	return len(p), nil
}

// WorkerCommand is `ec2sec run --worker`: one piece of the daemon's work, asked for on Stdin
// by the daemon (see the protocol above). Not for scripts; the flags and format may change.
type WorkerCommand struct {
	Stdin  io.Reader
	Stdout io.Writer
	Log    *slog.Logger
	// Confine confines the process for good before it works (confine_linux.go): Landlock
	// (writes only under the state dir), seccomp (no ptrace, process_vm_*, pidfd_getfd), and
	// capabilities dropped once not needed: at once for a delivery, after the scan for a
	// cycle. The CLI sets it; in-process tests do not.
	Confine bool
}

// Run does the requested work and returns the exit code.
func (w WorkerCommand) Run(ctx context.Context) int {
	log := w.Log
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	in := bufio.NewReaderSize(w.Stdin, 64<<10)
	line, err := readLine(in, maxRequest)
	if err != nil {
		log.Error("worker: no request", "err", err)
		return ExitUsage
	}
	var req workerRequest
	if err := json.Unmarshal(line, &req); err != nil {
		log.Error("worker: bad request", "err", err)
		return ExitUsage
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, in) // returns when the daemon closes stdin or exits
		cancel()
	}()
	limitMemory()
	if w.Confine {
		confineWorker(req.Config.StateDir, log)
	}

	var res workerResult
	switch req.Mode {
	case workerCycle:
		res = w.cycle(ctx, req, log)
	case workerFlush:
		res = w.flush(ctx, req, log)
	default:
		log.Error("worker: unknown mode", "mode", req.Mode)
		return ExitUsage
	}
	if err := json.NewEncoder(w.Stdout).Encode(res); err != nil {
		log.Error("worker: result not written", "err", err)
		return ExitNoScan
	}
	return ExitOK
}

// cycle is a scan cycle: scan (capabilities dropped once it has read what it needs, when
// confined), spool and deliver.
func (w WorkerCommand) cycle(ctx context.Context, req workerRequest, log *slog.Logger) workerResult {
	var res workerResult
	o := ScanOptions{Log: log, Config: req.Config}
	if w.Confine {
		// The scan is the one part that reads other users' files and processes.
		o.afterScan = func() {
			if err := dropCapabilities(); err != nil {
				log.Warn("worker: capabilities not dropped after the scan", "err", err)
			}
		}
	}
	o.Root, o.Proc, o.Offline = scanTarget(req.Root, req.Proc, false)
	if err := prepare(&o); err != nil {
		res.Err = err.Error()
		return res
	}
	cy := runCycle(ctx, o, req.Config, w.reporter(req.Config, log), log)
	res.Spooled, res.Flushed = cy.spooled, cy.flushed
	res.setErr(cy.err)
	return res
}

// flush is a delivery of the spool within the request's budget (default cycleFlush),
// capabilities dropped first when confined.
func (w WorkerCommand) flush(ctx context.Context, req workerRequest, log *slog.Logger) workerResult {
	var res workerResult
	if w.Confine {
		if err := dropCapabilities(); err != nil { // delivery reads nobody else's files
			log.Warn("worker: capabilities not dropped", "err", err)
		}
	}
	rep := w.reporter(req.Config, log)
	if rep == nil {
		res.NoReporter = true
		return res
	}
	budget := req.Budget
	if budget <= 0 {
		budget = cycleFlush
	}
	fctx, cancel := context.WithTimeout(ctx, budget)
	st, err := rep.Flush(fctx)
	cancel()
	res.Flushed = st
	res.setErr(err)
	return res
}

func (w WorkerCommand) reporter(cfg Config, log *slog.Logger) *Reporter {
	rep, err := NewReporter(cfg, log, ReporterOptions{})
	if err != nil {
		log.Error("reporting unavailable; scanning anyway and trying again next cycle", "err", err)
		return nil
	}
	return rep
}

func (r *workerResult) setErr(err error) {
	switch {
	case err == nil:
	case errors.Is(err, errNoReporter):
		r.NoReporter = true
	default:
		r.Err = errString(err)
	}
}

// readLine reads one line of at most limit bytes.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, fmt.Errorf("request over %d bytes", limit)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("read request: %w", err)
		}
	}
}

// Executable is this program's path for RunCommand.Executable: "" when it cannot be known,
// which makes the daemon work in-process. On Linux it is /proc/self/exe, which the kernel
// resolves in the new child to the daemon's own binary even after a package upgrade replaced
// the file: a worker always speaks its daemon's protocol, and the new version starts with
// the restart the upgrade does.
func Executable() string {
	if _, err := os.Stat(selfExe); err == nil {
		return selfExe
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return exe
}

// ShedDaemonPtrace clears CAP_SYS_PTRACE from the daemon's effective set: it reads only its
// config and its workers' answers; the scan worker it starts gets it back from the permitted
// (ambient) set. Failure is logged: the daemon works either way.
func ShedDaemonPtrace(log *slog.Logger) {
	if err := dropEffectivePtrace(); err != nil {
		log.Warn("daemon: effective capabilities not cleared", "err", err)
	}
}
