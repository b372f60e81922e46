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
type RunCommand struct {
	ConfigPath string
	Root       string // default "/"
	Proc       string // default "/proc" for root "/"
	Log        *slog.Logger
	// Reload delivers SIGHUP; nil = no reloads.
	Reload <-chan os.Signal
	// ScanOptions is one value for the daemon's life: per-process objects in it (IMDS
	// client, detectors) are built once, not per scan.
	ScanOptions ScanOptions
	Reporter    ReporterOptions

	// Tests shorten the schedule; zero means the config's values.
	interval, splay, retryBase time.Duration
	// scanned, when set, is told after every scan cycle (tests).
	scanned chan<- cycle
}

type cycle struct {
	spooled SpoolStats
	flushed FlushStats
	err     error
}

// Final flush budget after a stop signal: short, since systemd waits at most 90s.
const finalFlush = 20 * time.Second

// Run runs the agent until ctx is done and returns the exit code.
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
	limitMemory()
	o := c.ScanOptions
	o.Root, o.Proc = c.Root, c.Proc
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Proc == "" && o.Root == "/" {
		o.Proc = defaultProcfs
	}
	if o.Log == nil {
		o.Log = log
	}
	o.Config = cfg
	// Per-process objects (the secret detector, the fingerprint key) are built once here,
	// not by every scan.
	if err := c.prepare(&o); err != nil {
		log.Error("cannot start", "err", err)
		return ExitUsage
	}
	var rep *Reporter
	openReporter := func() {
		if rep != nil {
			return
		}
		r, err := NewReporter(cfg, log, c.Reporter)
		if err != nil {
			log.Error("reporting unavailable; scanning anyway and trying again next cycle", "err", err)
			return
		}
		rep = r
	}
	openReporter()

	interval := func() time.Duration {
		if c.interval > 0 {
			return c.interval
		}
		return cfg.Interval.Duration
	}
	splay := c.splay
	if splay == 0 {
		splay = cfg.Splay.Duration
	}
	if splay < 0 {
		splay = 0
	}
	first := time.Duration(0)
	if splay > 0 {
		first = rand.N(splay)
	}
	log.Info("ec2sec agent started", "version", Version(), "interval", interval().String(), "first_scan_in", first.String(), "state_dir", cfg.StateDir)

	scanT := time.NewTimer(first)
	defer scanT.Stop()
	retryT := time.NewTimer(0)
	retryT.Stop()
	defer retryT.Stop()
	failures := 0
	backoff := func() time.Duration {
		base := c.retryBase
		if base <= 0 {
			base = 30 * time.Second
		}
		ceil := min(15*time.Minute, interval())
		d := base << min(max(failures-1, 0), 20)
		if d > ceil || d <= 0 {
			d = ceil
		}
		return d/2 + rand.N(d/2+1) // jitter: a fleet recovering from an outage does not stampede
	}
	afterFlush := func(err error) {
		if err == nil {
			failures = 0
			retryT.Stop()
			return
		}
		failures++
		d := backoff()
		log.Warn("delivery incomplete; will retry", "err", err, "retry_in", d.String(), "failures", failures)
		retryT.Reset(d)
	}

	if rep != nil {
		// Deliver what an earlier run left before waiting out the splay.
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		st, err := rep.Flush(fctx)
		cancel()
		if err != nil || sum(st.Accepted) > 0 {
			log.Info("spool left by an earlier run", "accepted", st.Accepted, "pending", st.Pending, "err", errString(err))
		}
		if err != nil && ctx.Err() == nil {
			afterFlush(err)
		}
	}

	for {
		select {
		case <-ctx.Done():
			if rep != nil {
				fctx, cancel := context.WithTimeout(context.Background(), finalFlush)
				st, err := rep.Flush(fctx)
				cancel()
				log.Info("ec2sec agent stopping", "final_flush_pending", sum(st.Pending), "err", errString(err))
			} else {
				log.Info("ec2sec agent stopping")
			}
			return ExitOK

		case <-c.Reload:
			next, err := LoadConfig(c.ConfigPath)
			if err != nil {
				log.Error("config reload failed; keeping the running config", "err", err)
				continue
			}
			keyChanged := next.FingerprintKeyFile != cfg.FingerprintKeyFile || next.StateDir != cfg.StateDir
			old := o
			o.Config = next
			if keyChanged {
				o.FingerprintKey = nil
			}
			if err := c.prepare(&o); err != nil {
				o = old
				log.Error("config reload failed; keeping the running config", "err", err)
				continue
			}
			cfg = next
			rep = nil
			openReporter()
			log.Info("config reloaded", "interval", interval().String())

		case <-scanT.C:
			openReporter()
			cy := c.cycle(ctx, o, cfg, rep, log)
			releaseMemory()
			scanT.Reset(interval())
			if ctx.Err() == nil && rep != nil {
				afterFlush(cy.err)
			}
			if c.scanned != nil {
				c.scanned <- cy
			}

		case <-retryT.C:
			if rep == nil {
				continue
			}
			fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			st, err := rep.Flush(fctx)
			cancel()
			log.Info("delivery retry", "accepted", st.Accepted, "pending", st.Pending, "err", errString(err))
			afterFlush(err)
		}
	}
}

// prepare builds what every scan would otherwise build again.
func (c RunCommand) prepare(o *ScanOptions) error {
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

// cycle is one scan, spooled and flushed.
func (c RunCommand) cycle(ctx context.Context, o ScanOptions, cfg Config, rep *Reporter, log *slog.Logger) cycle {
	var cy cycle
	o.Config = cfg
	report, err := Scan(ctx, o)
	if err != nil {
		log.Error("scan could not run", "err", err)
		cy.err = err
		return cy
	}
	log.Info("scan done", "passed", report.Summary.Passed, "failed", report.Summary.Failed,
		"warning", report.Summary.Warning, "not_available", report.Summary.NotAvailable, "duration_ms", report.Summary.DurationMS)
	if ctx.Err() != nil || rep == nil {
		return cy // a scan cut short by a stop signal is not reported: it would look like fixes
	}
	cy.spooled, err = rep.Spool(ctx, report)
	if err != nil {
		log.Error("could not spool the report", "err", err)
		cy.err = err
		return cy
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
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
