package probes

// The credentials probe's bounds, the bounded scan of one file's content (each distinct
// content scanned once per scan), and the results that say what a bound cut.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
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

// limitResults adds to out one WARNING (or NOT_AVAILABLE) per check that says everything a
// limit cut from its look: findings not reported, files not scanned to their end, files not
// read at all.
func (st *credState) limitResults(out []Result, where string) []Result {
	var unread string
	if len(st.unread) > 0 {
		unread = fmt.Sprintf("the probe's time ran out before %s of %d could be read (%s)", plural(len(st.unread), "file", "files"), len(st.queue), joinMax(st.unread, 3))
	}
	for _, c := range slices.Concat(credFileChecks, []string{"cred-file-permissions"}) {
		found := slices.ContainsFunc(out, func(r Result) bool { return r.Check == c })
		var notes []string
		if n := st.cut[c]; n > 0 {
			notes = append(notes, fmt.Sprintf("%s not reported: at most %d findings per file, %d per check and %d per scan are (in %s)", plural(n, "more finding", "more findings"), maxFindingsPerFile, maxResultsPerCheck, maxSecretResults, joinMax(st.cutFiles, 3)))
		}
		if c == "cred-file-permissions" {
			if len(notes) > 0 {
				out = append(out, NewResult(c, Warning, "", notes[0]).With("not_reported", st.cut[c]))
			}
			continue
		}
		if len(st.stopped) > 0 {
			notes = append(notes, fmt.Sprintf("not scanned to the end, after more than %d findings in the first %d KiB: %s", maxFindingsPerFile, firstLook>>10, joinMax(st.stopped, 3)))
		}
		notes = append(notes, st.limits...)
		if unread != "" {
			notes = append(notes, unread)
		}
		switch {
		case len(notes) == 0:
		case unread != "" && !found:
			out = append(out, NewResult(c, NotAvailable, "", fmt.Sprintf("%s; %s in the %s read", strings.Join(notes, "; "), credNone[c], where)).With("unread", len(st.unread)))
		default:
			r := NewResult(c, Warning, "", strings.Join(notes, "; ")+": more may be there")
			r = r.With("not_reported", st.cut[c]).With("not_scanned_to_end", len(st.stopped)).With("unread", len(st.unread))
			out = append(out, r)
		}
	}
	return out
}
