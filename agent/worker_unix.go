//go:build unix

package agent

import (
	"os"
	"runtime"
	"syscall"
)

// maxRSSKiB is the peak resident set of an exited child, in KiB (-1 when unknown).
func maxRSSKiB(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return -1
	}
	if runtime.GOOS == "darwin" {
		return ru.Maxrss >> 10 // bytes there
	}
	return ru.Maxrss
}
