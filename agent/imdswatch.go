package agent

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ec2sec/ec2sec/agent/spool"
	"github.com/ec2sec/ec2sec/probes/imdswatch"
)

// residentWatch is the IMDS watcher kept loaded by the run daemon (the scheduler process):
// a blocking ring buffer read in one goroutine, no timer. Its rolling summary goes to the
// state dir (durably, like the other state files) before each scan cycle, at most once a
// minute while requests come in, and at stop, so the scan workers read a current window
// and a restart or upgrade loses none of it.
type residentWatch struct {
	w    *imdswatch.Watcher
	t    *imdswatch.Table
	path string
	log  *slog.Logger
	done chan struct{}

	mu       sync.Mutex // serialises saves
	lastSave time.Time
}

// saveEvery is how often, at most, requests trigger a save between scan cycles.
const saveEvery = time.Minute

// startWatch loads the watcher unless the imdswatch probe is disabled. When it cannot load,
// the summary records why (the checks say NOT_AVAILABLE with it) and nil is returned.
func startWatch(cfg Config, getenv func(string) string, log *slog.Logger) *residentWatch {
	if slices.Contains(cfg.Probes.Disable, "imdswatch") || cfg.StateDir == "" {
		return nil
	}
	path := filepath.Join(cfg.StateDir, imdswatch.SummaryFile)
	prev, err := imdswatch.LoadSummary(path)
	if err != nil {
		log.Warn("IMDS watch summary unreadable; starting a new window", "err", err)
		prev = nil
	}
	w, err := imdswatch.Load(imdswatch.Options{Dests: imdswatch.Dests(getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"))})
	if err != nil {
		log.Warn("IMDS watcher not loaded: the imdswatch checks will be NOT_AVAILABLE", "err", err)
		s := prev
		if s == nil {
			s = &imdswatch.Summary{Version: imdswatch.SummaryVersion}
		}
		s.Running, s.Unavailable, s.Updated = false, err.Error(), time.Now().UTC()
		if err := writeSummary(cfg.StateDir, path, s); err != nil {
			log.Warn("could not save the IMDS watch summary", "err", err)
		}
		return nil
	}
	rw := &residentWatch{w: w, t: imdswatch.NewTable(prev, time.Now), path: path, log: log, done: make(chan struct{})}
	rw.save()
	log.Info("IMDS watcher loaded", "cgroup", w.Cgroup(), "summary", path)
	go func() {
		defer close(rw.done)
		en := &imdswatch.Enricher{}
		err := imdswatch.Serve(w, en, rw.t, func(imdswatch.Event, imdswatch.Identity) {
			if time.Since(rw.lastSaved()) >= saveEvery {
				rw.save()
			}
		})
		if err != nil {
			log.Error("IMDS watcher stopped reading", "err", err)
		}
	}()
	return rw
}

func (rw *residentWatch) lastSaved() time.Time {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return rw.lastSave
}

// save writes the summary when it changed (or the open segment grew).
func (rw *residentWatch) save() {
	if rw == nil {
		return
	}
	rw.mu.Lock()
	defer rw.mu.Unlock()
	s := rw.t.Snapshot()
	if err := writeSummary(filepath.Dir(rw.path), rw.path, s); err != nil {
		rw.log.Warn("could not save the IMDS watch summary", "err", err)
		return
	}
	rw.t.MarkSaved()
	rw.lastSave = time.Now()
}

// stop unloads the watcher and saves the closed window.
func (rw *residentWatch) stop() {
	if rw == nil {
		return
	}
	if err := rw.w.Close(); err != nil {
		rw.log.Warn("IMDS watcher unload", "err", err)
	}
	<-rw.done
	rw.t.Stop()
	rw.save()
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
