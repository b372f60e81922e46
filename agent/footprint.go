package agent

import (
	"os"
	"runtime/debug"
)

// ScanGCPercent is the GC target of a one-shot scan: the secret detector's compiled rules are
// most of the live heap, and with Go's default of 100 the heap may grow to twice that before
// a collection. 50 keeps the peak RSS of a full scan under 40 MiB for a few ms of CPU.
const ScanGCPercent = 50

// TuneGC sets ScanGCPercent unless the operator chose a GC setting (GOGC or GOMEMLIMIT).
func TuneGC() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(ScanGCPercent)
	}
}
