package agent

import (
	"os"
	"runtime/debug"
)

// softMemoryLimit keeps an agent that runs on every instance small: the GC works harder only
// when the heap nears it, so scans cost no extra CPU until then. GOMEMLIMIT overrides it.
const softMemoryLimit = 28 << 20

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softMemoryLimit)
	}
}

// releaseMemory hands the scan's garbage back to the OS before the daemon sleeps until the
// next scan; the Go runtime would otherwise keep it for minutes.
func releaseMemory() { debug.FreeOSMemory() }
