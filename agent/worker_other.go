//go:build !unix

package agent

import "os"

// maxRSSKiB is the peak resident set of an exited child: not reported here.
func maxRSSKiB(*os.ProcessState) int64 { return -1 }
