package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/ec2sec/ec2sec/agent/spool"
)

// lockPoll is how often a resident watcher waiting for the watch looks whether the holder
// (a run daemon that loaded the programs itself) has let it go.
const lockPoll = 2 * time.Second

// runResident is `ec2sec imds-watch --resident`, the whole of ec2sec-imdswatch.service: the
// watcher alone, holding the watch lock (imdswatch.go) and keeping the rolling summary in
// the state dir until ctx is done or Duration has passed. It tells systemd (Type=notify)
// that it is ready once the programs are attached, or once it knows they cannot be (the
// reason is then in the summary for the checks, and it exits 0: restarting would not change
// the kernel or the capabilities).
func (c IMDSWatchCommand) runResident(ctx context.Context, cfg Config, getenv func(string) string) int {
	log := c.Log
	if log == nil {
		log = slog.New(slog.NewJSONHandler(c.Stderr, nil))
	}
	notify := func(state string) {
		if err := sdNotify(getenv, state); err != nil {
			log.Warn("could not notify systemd", "err", err)
		}
	}
	if !watchEnabled(cfg) {
		why := "the imdswatch probe is disabled in the config"
		if cfg.StateDir == "" {
			why = "the config has no state_dir"
		}
		log.Info("IMDS watcher not started: " + why)
		notify("READY=1\nSTATUS=not watching: " + why)
		return ExitOK
	}
	if err := privateDir(cfg.StateDir); err != nil {
		log.Error("IMDS watcher cannot keep its summary", "err", err)
		return ExitNoScan
	}
	lockPath := filepath.Join(cfg.StateDir, watchLockFile)
	lock, err := spool.TryAcquire(lockPath)
	if err == nil && lock == nil {
		log.Info("another ec2sec process (a run daemon that loaded the watcher itself) holds the IMDS watch; waiting for it to let go")
		notify("READY=1\nSTATUS=waiting: another ec2sec process holds the IMDS watch")
		lock, err = waitLock(ctx, lockPath)
		if lock == nil && err == nil {
			return ExitOK // stopped while waiting
		}
	}
	if err != nil {
		log.Error("IMDS watcher cannot take the watch lock", "err", err)
		return ExitNoScan
	}
	load := c.load
	if load == nil {
		load = loadBPF
	}
	rw, err := startResident(cfg.StateDir, getenv, log, lock, load)
	if err != nil {
		if werr := recordUnavailable(cfg.StateDir, err.Error(), true); werr != nil {
			log.Warn("could not save the IMDS watch summary", "err", werr)
		}
		lock.Release()
		log.Error("IMDS watcher cannot load on this host: the imdswatch checks say NOT_AVAILABLE with this reason", "err", err)
		notify("READY=1\nSTATUS=not watching: " + err.Error())
		return ExitOK
	}
	// Attached: what loaded the programs is not needed any more, and a compromised watcher
	// must not hold it (under systemd 219 that is CAP_SYS_ADMIN). Not with a test's loader:
	// that runs in the test's own process.
	if c.load == nil {
		if err := keepOnlyPtrace(); err != nil {
			log.Warn("IMDS watcher could not give up the capabilities it loaded with", "err", err)
		}
	}
	notify("READY=1\nSTATUS=watching IMDS callers; summary in " + rw.path)
	var timer <-chan time.Time
	if c.Duration > 0 {
		t := time.NewTimer(c.Duration)
		defer t.Stop()
		timer = t.C
	}
	code := ExitOK
	select {
	case <-ctx.Done():
	case <-timer:
	case <-rw.done: // reading failed (logged): exit so that systemd restarts the watcher
		code = ExitNoScan
	}
	notify("STOPPING=1")
	rw.stop()
	log.Info("IMDS watcher unloaded; window saved", "summary", rw.path)
	return code
}

// waitLock polls for the lock at path until it is free (then held) or ctx is done (nil, nil).
func waitLock(ctx context.Context, path string) (*spool.Lock, error) {
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case <-t.C:
		}
		if l, err := spool.TryAcquire(path); l != nil || err != nil {
			return l, err
		}
	}
}

// sdNotify sends state to systemd's notification socket ($NOTIFY_SOCKET, set for
// Type=notify units; nothing to do without it), as sd_notify(3) does: one datagram.
func sdNotify(getenv func(string) string, state string) error {
	addr := getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // an abstract socket
	} else if addr[0] != '/' {
		return fmt.Errorf("NOTIFY_SOCKET %q: not a socket path", addr)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}
