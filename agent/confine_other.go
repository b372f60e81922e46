//go:build !linux

package agent

import "log/slog"

type confinement struct {
	LandlockABI int
	Writable    string
	Seccomp     bool
}

// confineWorker: Landlock, seccomp and capabilities are Linux's; elsewhere the worker runs
// as the service manager started it, and says so.
func confineWorker(stateDir string, log *slog.Logger) confinement {
	log.Info("worker not confined: Landlock and seccomp are Linux-only")
	return confinement{}
}

func dropCapabilities() error    { return nil }
func dropEffectivePtrace() error { return nil }
func keepOnlyPtrace() error      { return nil }
