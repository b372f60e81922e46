package probes

// The credentials probe's bounds, and the bounded scan of one file's content (each distinct
// content scanned once per scan).

import (
	"bytes"
	"crypto/sha256"
	"unsafe"

	"github.com/ec2sec/ec2sec/probes/secrets"
)

// Bounds: how many passwd entries, directory entries and processes one scan looks at.
const (
	maxUsers      = 10000
	maxDirEntries = 1000
	// Findings reported per file, per check and per scan of this probe. A user can write
	// ten thousand password= lines into a shell history: the first findings name the file
	// to fix, and a WARNING says how many more there were, where.
	maxFindingsPerFile = 20
	maxResultsPerCheck = 100
	maxSecretResults   = 250
	// A file bigger than this is first scanned this far: when that alone holds more than
	// maxFindingsPerFile findings, the rest is not scanned (and the WARNING says so).
	firstLook      = 64 << 10
	maxEnvironSize = 1 << 20
	maxHomeEntries = 4096
)

// boundedFindings is findings, bounded for a file written to exhaust the scanner: a file
// longer than firstLook is first scanned that far (to a line's end); when that part alone
// holds more than maxFindingsPerFile findings, they are what the file gives, and stopped
// says how many bytes were scanned. Otherwise the whole file is scanned.
func (st *credState) boundedFindings(data []byte) (fs []secrets.Finding, stopped int64) {
	if len(data) > firstLook {
		end := firstLook
		if i := bytes.LastIndexByte(data[:end], '\n'); i > 0 {
			end = i + 1
		}
		if fs := st.findings(data[:end]); len(fs) > maxFindingsPerFile {
			return fs, int64(end)
		}
	}
	return st.findings(data), 0
}

// findings returns the findings of data, scanned once per distinct content in a scan.
func (st *credState) findings(data []byte) []secrets.Finding {
	sum := sha256.Sum256(data)
	st.memoMu.Lock()
	findings, ok := st.memo[sum]
	st.memoMu.Unlock()
	if ok {
		return findings
	}
	// Two readers may scan the same content at once; both get the same findings. The text
	// is data's memory, not a copy: Scan keeps nothing of it, and data is not written before
	// Scan returns.
	findings = st.env.Secrets.Scan(unsafe.String(unsafe.SliceData(data), len(data)), "plain", st.env.FingerprintKey)
	st.memoMu.Lock()
	st.memo[sum] = findings
	st.memoMu.Unlock()
	return findings
}
