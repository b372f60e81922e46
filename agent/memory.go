package agent

import (
	"os"
	"runtime/debug"
)

// A scan is short and allocates most of what it allocates once (file contents, decoded user
// data, results) for ~15 MiB in all while its live heap stays a few MiB. The Go default
// (GOGC=100) collects every time the heap doubles, five or more cycles a scan for garbage the
// process is about to drop anyway. So a scan collects rarely (gcPercent) and the soft limit
// bounds what that costs: the GC works harder only when the heap nears it, and the peak RSS
// stays under 40 MiB (the limit plus the binary's ~13 MiB of code pages). GOGC and
// GOMEMLIMIT override either.
const (
	softMemoryLimit = 24 << 20
	gcPercent       = 400
)

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// releaseMemory hands the scan's garbage back to the OS before the daemon sleeps until the
// next scan; the Go runtime would otherwise keep it for minutes.
func releaseMemory() { debug.FreeOSMemory() }
