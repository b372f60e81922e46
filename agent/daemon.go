package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/ec2sec/ec2sec/probes"
)

// RunCommand is `ec2sec run`, the agent: a first scan after a random splay, then one every
// interval, each spooled and delivered; failed deliveries are retried with capped,
// jittered exponential backoff; a signal on Reload re-reads the config; cancelling ctx
// (SIGTERM/SIGINT) stops it after a final flush. Only a config that cannot be read at start
// exits; every later error is logged and the agent carries on.
//
// With Executable set (as the CLI does), every scan cycle and every delivery runs in a child
// process of that executable (worker.go), so that between scans only the scheduler stays
// resident; without it, all runs in this process (tests, and a binary that cannot find
// itself).
type RunCommand struct {
	ConfigPath string
	Root       string // default "/"
	Proc       string // default "/proc" for root "/"
	Log        *slog.Logger
	// Reload delivers SIGHUP; nil = no reloads.
	Reload <-chan os.Signal
	// ScanOptions is one value for the daemon's life: per-process objects in it (IMDS
	// client, detectors) are built once, not per scan. In-process only.
	ScanOptions ScanOptions
	Reporter    ReporterOptions // in-process only

	// Executable is this program's path, for worker processes ("" = work in-process).
	Executable string
	// WorkerLog receives the workers' log lines (JSON, one per line), as they come.
	WorkerLog io.Writer

	// Tests shorten the schedule; zero means the config's values.
	interval, splay, retryBase time.Duration
	// scanned, when set, is told after every scan cycle (tests).
	scanned chan<- cycle
	// watchLoad replaces the BPF watcher's loader (tests).
	watchLoad watchLoader
}

type cycle struct {
	spooled SpoolStats
	flushed FlushStats
	err     error
}

// Final flush budget after a stop signal: short, since the unit gives the stop 30 s
// (TimeoutStopSec=30) before systemd kills the agent.
const finalFlush = 20 * time.Second

// Delivery budgets: the flush of a cycle or of a retry, and the one at start for what an
// earlier run left in the spool.
const (
	cycleFlush = 5 * time.Minute
	startFlush = time.Minute
)

// work is what the daemon's loop hands out: a scan cycle (scan, spool, deliver) or a
// delivery of what is spooled. Neither retries; the loop does, on its timers.
type work interface {
	cycle(ctx context.Context, cfg Config) cycle
	// flush delivers the spool within budget; errNoReporter when there is no spool to
	// deliver (it could not be opened).
	flush(ctx context.Context, cfg Config, budget time.Duration) (FlushStats, error)
	// reload takes a new config; an error keeps the old one.
	reload(cfg Config) error
}

// errNoReporter is a flush without a spool: reporting could not be set up.
var errNoReporter = errors.New("reporting unavailable")

// Run runs the agent until ctx is done and returns the exit code.
//
// The steps: load the config, load the IMDS watcher, start the work (workers or in-process),
// deliver what an earlier run left, then serve the loop: a stop signal (final flush), a
// reload, a scan cycle, a delivery retry.
func (c RunCommand) Run(ctx context.Context) int {
	log := c.Log
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	cfg, err := LoadConfig(c.ConfigPath)
	if err != nil {
		log.Error("cannot start", "err", err)
		return ExitUsage
	}
	d := &daemon{c: c, cfg: cfg, log: log}
	// The IMDS watcher stays loaded in this process for the daemon's life, unless another
	// process (ec2sec-imdswatch.service) holds the watch (imdswatch.go).
	getenv := c.ScanOptions.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	d.watch = &daemonWatch{getenv: getenv, log: log, load: c.watchLoad}
	d.watch.ensure(cfg)
	defer d.watch.stop()
	releaseMemory() // loading BPF allocates; the scheduler should idle small

	if err := d.startWork(); err != nil {
		log.Error("cannot start", "err", err)
		return ExitUsage
	}
	first := d.firstScanIn()
	log.Info("ec2sec agent started", "version", Version(), "interval", d.interval().String(), "first_scan_in", first.String(), "state_dir", cfg.StateDir, "workers", c.Executable != "")

	d.scanT = time.NewTimer(first)
	defer d.scanT.Stop()
	d.retryT = time.NewTimer(0)
	d.retryT.Stop()
	defer d.retryT.Stop()

	d.deliverLeftovers(ctx)
	releaseMemory()

	for {
		select {
		case <-ctx.Done():
			d.stop()
			return ExitOK
		case <-c.Reload:
			d.reload()
		case <-d.scanT.C:
			d.scanCycle(ctx)
		case <-d.retryT.C:
			d.retryDelivery(ctx)
		}
	}
}

// daemon is the state of Run's loop: the config in force, the work that does the cycles and
// deliveries, the IMDS watcher, the timers, and the deliveries failed in a row.
type daemon struct {
	c     RunCommand
	cfg   Config
	log   *slog.Logger
	w     work
	watch *daemonWatch

	scanT, retryT *time.Timer
	failures      int
}

// startWork sets up who does the cycles and deliveries: worker processes of c.Executable,
// or this process (within its memory limit).
func (d *daemon) startWork() error {
	c := d.c
	if c.Executable != "" {
		d.w = &children{exe: c.Executable, root: c.Root, proc: c.Proc, log: d.log, out: c.WorkerLog}
		return nil
	}
	limitMemory()
	ip := &inProcess{c: c, log: d.log}
	if err := ip.start(d.cfg); err != nil {
		return err
	}
	d.w = ip
	return nil
}

// interval is the time between scans, under the config in force.
func (d *daemon) interval() time.Duration {
	if d.c.interval > 0 {
		return d.c.interval
	}
	return d.cfg.Interval.Duration
}

// firstScanIn is the wait before the first scan: random within the splay, so that a fleet
// started at once does not scan (and report) at once.
func (d *daemon) firstScanIn() time.Duration {
	splay := d.c.splay
	if splay == 0 {
		splay = d.cfg.Splay.Duration
	}
	if splay < 0 {
		splay = 0
	}
	first := time.Duration(0)
	if splay > 0 {
		first = rand.N(splay)
	}
	return first
}

// backoff is the wait before the next delivery retry: exponential in the failures in a row,
// capped at 15 minutes and at the interval, and jittered.
func (d *daemon) backoff() time.Duration {
	base := d.c.retryBase
	if base <= 0 {
		base = 30 * time.Second
	}
	ceil := min(15*time.Minute, d.interval())
	dur := base << min(max(d.failures-1, 0), 20)
	if dur > ceil || dur <= 0 {
		dur = ceil
	}
	return dur/2 + rand.N(dur/2+1) // jitter: a fleet recovering from an outage does not stampede
}

// afterFlush schedules a retry after a failed delivery, or stops retrying after one that
// succeeded.
func (d *daemon) afterFlush(err error) {
	if err == nil {
		d.failures = 0
		d.retryT.Stop()
		return
	}
	d.failures++
	wait := d.backoff()
	d.log.Warn("delivery incomplete; will retry", "err", err, "retry_in", wait.String(), "failures", d.failures)
	d.retryT.Reset(wait)
}

// deliverLeftovers delivers what an earlier run left before waiting out the splay.
func (d *daemon) deliverLeftovers(ctx context.Context) {
	st, err := d.w.flush(ctx, d.cfg, startFlush)
	if errors.Is(err, errNoReporter) {
		return
	}
	if err != nil || sum(st.Accepted) > 0 {
		d.log.Info("spool left by an earlier run", "accepted", st.Accepted, "pending", st.Pending, "err", errString(err))
	}
	if err != nil && ctx.Err() == nil {
		d.afterFlush(err)
	}
}

// stop unloads the IMDS watcher and delivers what it can within finalFlush.
func (d *daemon) stop() {
	d.watch.stop()
	st, err := d.w.flush(context.Background(), d.cfg, finalFlush)
	if errors.Is(err, errNoReporter) {
		d.log.Info("ec2sec agent stopping")
	} else {
		d.log.Info("ec2sec agent stopping", "final_flush_pending", sum(st.Pending), "err", errString(err))
	}
}

// reload re-reads the config and hands it to the work; on any error the running config
// stays.
func (d *daemon) reload() {
	next, err := LoadConfig(d.c.ConfigPath)
	if err == nil {
		err = d.w.reload(next)
	}
	if err != nil {
		d.log.Error("config reload failed; keeping the running config", "err", err)
		return
	}
	d.cfg = next
	d.log.Info("config reloaded", "interval", d.interval().String())
}

// scanCycle runs one scan cycle (scan, spool, deliver) and schedules the next.
func (d *daemon) scanCycle(ctx context.Context) {
	d.watch.ensure(d.cfg) // the scan reads the window from the state dir
	cy := d.w.cycle(ctx, d.cfg)
	releaseMemory()
	d.scanT.Reset(d.interval())
	if ctx.Err() == nil && !errors.Is(cy.err, errNoReporter) {
		d.afterFlush(cy.err)
	}
	if d.c.scanned != nil {
		d.c.scanned <- cy
	}
}

// retryDelivery delivers the spool again after a failed delivery.
func (d *daemon) retryDelivery(ctx context.Context) {
	st, err := d.w.flush(ctx, d.cfg, cycleFlush)
	releaseMemory()
	if errors.Is(err, errNoReporter) {
		return
	}
	d.log.Info("delivery retry", "accepted", st.Accepted, "pending", st.Pending, "err", errString(err))
	d.afterFlush(err)
}

// inProcess does the daemon's work in its own process, keeping the detector, the fingerprint
// key and the reporter between scans.
type inProcess struct {
	c   RunCommand
	log *slog.Logger
	o   ScanOptions
	cfg Config
	rep *Reporter
}

func (ip *inProcess) start(cfg Config) error {
	o := ip.c.ScanOptions
	o.Root, o.Proc, o.Offline = scanTarget(ip.c.Root, ip.c.Proc, false)
	if o.Log == nil {
		o.Log = ip.log
	}
	o.Config = cfg
	// Per-process objects (the secret detector, the fingerprint key) are built once here,
	// not by every scan.
	if err := prepare(&o); err != nil {
		return err
	}
	ip.o, ip.cfg = o, cfg
	ip.openReporter()
	return nil
}

// openReporter opens the spool unless it is open; a failure is logged and tried again on
// the next cycle.
func (ip *inProcess) openReporter() {
	if ip.rep != nil {
		return
	}
	r, err := NewReporter(ip.cfg, ip.log, ip.c.Reporter)
	if err != nil {
		ip.log.Error("reporting unavailable; scanning anyway and trying again next cycle", "err", err)
		return
	}
	ip.rep = r
}

func (ip *inProcess) reload(next Config) error {
	o := ip.o
	o.Config = next
	if next.FingerprintKeyFile != ip.cfg.FingerprintKeyFile || next.StateDir != ip.cfg.StateDir {
		o.FingerprintKey = nil
	}
	if err := prepare(&o); err != nil {
		return err
	}
	ip.o, ip.cfg, ip.rep = o, next, nil
	ip.openReporter()
	return nil
}

func (ip *inProcess) cycle(ctx context.Context, cfg Config) cycle {
	ip.openReporter()
	return runCycle(ctx, ip.o, cfg, ip.rep, ip.log)
}

func (ip *inProcess) flush(ctx context.Context, _ Config, budget time.Duration) (FlushStats, error) {
	if ip.rep == nil {
		return FlushStats{}, errNoReporter
	}
	fctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	return ip.rep.Flush(fctx)
}

// prepare builds what every scan would otherwise build again.
func prepare(o *ScanOptions) error {
	avail := o.Available
	if avail == nil {
		avail = probes.All()
	}
	selected, err := probes.Select(avail, nil)
	if err != nil {
		return err
	}
	return prepareSecrets(o, selected)
}

// runCycle is one scan, spooled and flushed; rep nil = scan only (errNoReporter).
func runCycle(ctx context.Context, o ScanOptions, cfg Config, rep *Reporter, log *slog.Logger) cycle {
	var cy cycle
	o.Config = cfg
	report, err := Scan(ctx, o)
	if o.afterScan != nil {
		o.afterScan()
	}
	if err != nil {
		log.Error("scan could not run", "err", err)
		cy.err = err
		return cy
	}
	log.Info("scan done", "passed", report.Summary.Passed, "failed", report.Summary.Failed,
		"warning", report.Summary.Warning, "not_available", report.Summary.NotAvailable, "duration_ms", report.Summary.DurationMS)
	if ctx.Err() != nil {
		return cy // a scan cut short by a stop signal is not reported: it would look like fixes
	}
	if rep == nil {
		cy.err = errNoReporter
		return cy
	}
	cy.spooled, err = rep.Spool(ctx, report)
	if err != nil {
		log.Error("could not spool the report", "err", err)
		cy.err = err
		return cy
	}
	fctx, cancel := context.WithTimeout(ctx, cycleFlush)
	defer cancel()
	cy.flushed, cy.err = rep.Flush(fctx)
	log.Info("report delivered", "spooled", cy.spooled, "accepted", cy.flushed.Accepted,
		"rejected", cy.flushed.Rejected, "pending", cy.flushed.Pending, "err", errString(cy.err))
	return cy
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, context.Canceled) {
		return "cancelled"
	}
	return err.Error()
}
