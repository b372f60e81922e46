package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/ec2sec/ec2sec/agent/spool"
	"github.com/ec2sec/ec2sec/probes/imdswatch"
)

// The IMDS watch summary (<state_dir>/imdswatch.json) has one writer at a time: the process
// that holds the exclusive lock <state_dir>/imdswatch.lock with the watcher loaded. Two
// processes can be that writer:
//
//   - `ec2sec imds-watch --resident`, the whole of systemd/ec2sec-imdswatch.service: the unit
//     holding the capabilities the watcher needs (docs/imds-watch.md, "Privileges"). It waits
//     for the lock, then loads; when it cannot load it writes why into the summary and exits.
//   - the run daemon, when it can load the programs itself (root without systemd, or a unit
//     given the capabilities by a drop-in). At start and before each scan cycle it takes the
//     lock only if it is free, then tries to load. When it cannot, it lets the lock go and
//     writes why only where the summary does not already say why: a watcher that had the
//     capabilities said it better. Under the packaged units the watcher unit holds the lock
//     and the daemon only reads.
//
// So when both could load, the first to take the lock does, and the other waits (the
// resident) or reads (the daemon). Readers (the scan) tell a live writer from a dead one by
// the lock: a live writer's open window reaches now; a writer that died without closing its
// window (kill -9) watched until its last save.
const watchLockFile = "imdswatch.lock"

// watchLoader loads the kernel side: loadBPF, or a test's feed.
type watchLoader func(imdswatch.Options) (imdswatch.Source, func() error, error)

func loadBPF(o imdswatch.Options) (imdswatch.Source, func() error, error) {
	w, err := imdswatch.Load(o)
	if err != nil {
		return nil, nil, err
	}
	return w, w.Close, nil
}

// residentWatch is a loaded watcher that keeps the summary: a blocking ring buffer read in
// one goroutine, no timer while nobody calls IMDS. Its summary goes to the state dir
// (durably, like the other state files) when it starts, on a request (at once when the last
// request-driven save is saveEvery old, else when it will be: one save a minute at most
// while requests come in), when its owner asks (the daemon, before each scan cycle) and at
// stop, so a restart or upgrade loses none of the window. Between saves the file's open
// window ends at the last save; readers take it to now while the lock is held
// (loadWatchSummary).
type residentWatch struct {
	src      imdswatch.Source
	closeSrc func() error
	t        *imdswatch.Table
	lock     *spool.Lock
	dir      string
	path     string
	log      *slog.Logger
	done     chan struct{}

	mu      sync.Mutex  // serialises saves
	lastReq time.Time   // the last save a request asked for
	pending *time.Timer // a save armed by a request that was not saved at once
	stopped bool
}

// saveEvery is how often, at most, requests trigger a save.
const saveEvery = time.Minute

// watchEnabled says whether cfg asks for the watch at all.
func watchEnabled(cfg Config) bool {
	return cfg.StateDir != "" && !slices.Contains(cfg.Probes.Disable, "imdswatch")
}

// startResident loads the watcher for the holder of lock, continuing the summary in dir.
// On success the watch owns lock (stop releases it); on failure the caller still does.
func startResident(dir string, getenv func(string) string, log *slog.Logger, lock *spool.Lock, load watchLoader) (*residentWatch, error) {
	path := filepath.Join(dir, imdswatch.SummaryFile)
	prev, err := imdswatch.LoadSummary(path)
	if err != nil {
		log.Warn("IMDS watch summary unreadable; starting a new window", "err", err)
		prev = nil
	}
	if load == nil {
		load = loadBPF
	}
	src, closeSrc, err := load(imdswatch.Options{Dests: imdswatch.Dests(getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"))})
	if err != nil {
		return nil, err
	}
	rw := &residentWatch{src: src, closeSrc: closeSrc, t: imdswatch.NewTable(prev, time.Now), lock: lock,
		dir: dir, path: path, log: log, done: make(chan struct{})}
	rw.save()
	attrs := []any{"summary", path}
	if w, ok := src.(*imdswatch.Watcher); ok {
		attrs = append(attrs, "cgroup", w.Cgroup())
	}
	log.Info("IMDS watcher loaded", attrs...)
	go func() {
		defer close(rw.done)
		err := imdswatch.Serve(src, enricher(src, ""), rw.t, func(imdswatch.Event, imdswatch.Identity) { rw.requested() })
		if err != nil {
			log.Error("IMDS watcher stopped reading", "err", err)
		}
	}()
	return rw, nil
}

// requested saves after a request: at once when the last save is saveEvery old, else when
// it will be (one timer, armed only while requests come in).
func (rw *residentWatch) requested() {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.stopped || rw.pending != nil {
		return // stop saves, or a save is already due
	}
	if wait := saveEvery - time.Since(rw.lastReq); wait > 0 {
		rw.pending = time.AfterFunc(wait, rw.saveRequested)
		return
	}
	rw.saveLocked()
	rw.lastReq = time.Now()
}

func (rw *residentWatch) saveRequested() {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.stopped {
		return // stop saves the closed window itself, while it holds the lock
	}
	rw.saveLocked()
	rw.lastReq = time.Now()
}

// save writes the summary as of now.
func (rw *residentWatch) save() {
	if rw == nil {
		return
	}
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.saveLocked()
}

func (rw *residentWatch) saveLocked() {
	if rw.pending != nil {
		rw.pending.Stop()
		rw.pending = nil
	}
	if err := writeSummary(rw.dir, rw.path, rw.t.Snapshot()); err != nil {
		rw.log.Warn("could not save the IMDS watch summary", "err", err)
		return
	}
	rw.t.MarkSaved()
}

// stop unloads the watcher, saves the closed window and lets the lock go.
func (rw *residentWatch) stop() {
	if rw == nil {
		return
	}
	rw.mu.Lock()
	rw.stopped = true
	if rw.pending != nil {
		rw.pending.Stop()
		rw.pending = nil
	}
	rw.mu.Unlock()
	if err := rw.closeSrc(); err != nil {
		rw.log.Warn("IMDS watcher unload", "err", err)
	}
	<-rw.done
	rw.t.Stop()
	rw.save()
	rw.lock.Release()
}

// daemonWatch is the run daemon's side of the rule above.
type daemonWatch struct {
	getenv func(string) string
	log    *slog.Logger
	load   watchLoader // nil = loadBPF
	rw     *residentWatch
	said   string // what was last logged about not watching, so it is logged once
}

// ensure runs at start and before each scan cycle: it saves the window when this daemon
// watches, else takes the watch over when no other process holds it.
func (d *daemonWatch) ensure(cfg Config) {
	if d.rw != nil {
		if watchEnabled(cfg) && d.rw.dir == cfg.StateDir {
			d.rw.save() // the scan reads the window from the state dir
			return
		}
		d.rw.stop() // a reload disabled the probe or moved the state dir
		d.rw = nil
	}
	if !watchEnabled(cfg) {
		return
	}
	if err := privateDir(cfg.StateDir); err != nil {
		d.note(slog.LevelWarn, "IMDS watcher not loaded", err)
		return
	}
	lock, err := spool.TryAcquire(filepath.Join(cfg.StateDir, watchLockFile))
	if err != nil {
		d.note(slog.LevelWarn, "IMDS watcher not loaded", err)
		return
	}
	if lock == nil {
		d.note(slog.LevelInfo, "IMDS watcher runs in another process (ec2sec-imdswatch.service): the scans read its summary", nil)
		return
	}
	rw, err := startResident(cfg.StateDir, d.getenv, d.log, lock, d.load)
	if err != nil {
		reason := err.Error()
		if runtime.GOOS == "linux" {
			reason += "; no ec2sec-imdswatch service holds the watch either (systemctl status ec2sec-imdswatch)"
		}
		if werr := recordUnavailable(cfg.StateDir, reason, false); werr != nil {
			d.log.Warn("could not save the IMDS watch summary", "err", werr)
		}
		lock.Release()
		d.note(slog.LevelWarn, "IMDS watcher not loaded: the imdswatch checks will be NOT_AVAILABLE", err)
		return
	}
	d.rw, d.said = rw, ""
}

// note logs msg once while it stays the same.
func (d *daemonWatch) note(level slog.Level, msg string, err error) {
	key := msg
	var attrs []any
	if err != nil {
		key += err.Error()
		attrs = append(attrs, "err", err)
	}
	if key == d.said {
		return
	}
	d.said = key
	d.log.Log(context.Background(), level, msg, attrs...)
}

// stop unloads the daemon's watcher, if it has one.
func (d *daemonWatch) stop() {
	d.rw.stop()
	d.rw = nil
}

// recordUnavailable writes into dir's summary that nobody watches, and why. The window
// already watched stays (the checks report it until it is 7 days old). Unless authoritative,
// a reason already there is kept: it came from a watcher that had the capabilities (the
// resident), which knows better than a daemon that has none. A summary left "running" by a
// writer that died is closed at its last save.
func recordUnavailable(dir, reason string, authoritative bool) error {
	path := filepath.Join(dir, imdswatch.SummaryFile)
	s, err := imdswatch.LoadSummary(path)
	if err != nil {
		s = nil // unreadable: a new one says why
	}
	switch {
	case s == nil:
		s = &imdswatch.Summary{Version: imdswatch.SummaryVersion, Updated: time.Now().UTC()}
	case s.Running:
		s.Running = false
		if n := len(s.Watching); n > 0 {
			s.Updated = s.Watching[n-1].To
		}
	case !authoritative && s.Unavailable != "":
		return nil
	case s.Unavailable == reason:
		return nil
	}
	s.Unavailable = reason
	return writeSummary(dir, path, s)
}

// loadWatchSummary is what the scan reads: the summary in dir, its open window taken to now
// while its writer lives (holds the lock), closed at its last save when the writer died.
func loadWatchSummary(dir string) (*imdswatch.Summary, error) {
	s, err := imdswatch.LoadSummary(filepath.Join(dir, imdswatch.SummaryFile))
	if err != nil || s == nil || !s.Running || len(s.Watching) == 0 {
		return s, err
	}
	last := &s.Watching[len(s.Watching)-1]
	if spool.Held(filepath.Join(dir, watchLockFile)) {
		if now := time.Now().UTC(); now.After(last.To) {
			last.To = now
		}
		return s, nil
	}
	s.Running, s.Updated = false, last.To
	return s, nil
}

func writeSummary(dir, path string, s *imdswatch.Summary) error {
	if err := privateDir(dir); err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return spool.WriteFile(path, b)
}

// enricher completes the events of src from proc (default /proc) and, for a caller gone
// before proc was read, from the cgroup2 mount the watcher is attached to.
func enricher(src imdswatch.Source, proc string) *imdswatch.Enricher {
	en := &imdswatch.Enricher{Proc: proc}
	if w, ok := src.(*imdswatch.Watcher); ok {
		en.Cgroupfs = w.Cgroup()
	}
	return en
}
