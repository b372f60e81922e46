package probes

// The credentials probe's readers: up to maxCredReaders share the processes, then the files,
// and what they found is added up in queue order.

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ec2sec/ec2sec/probes/hostfs"
)

// credReader is one reader's state: the directory of the last file it looked at (most
// files come a few per home).
type credReader struct {
	st      *credState
	dir     *hostfs.Dir
	dirName string
	buf     []byte // every file is read into it, scanned, and done with before the next
	envBuf  []byte // and every process environment into this one
}

func (r *credReader) close() {
	if r.dir != nil {
		r.dir.Close()
	}
}

// Process environments, then credential files, are read by at most maxCredReaders readers
// (no more than GOMAXPROCS), each taking credChunk of them at a time: consecutive files
// share a home, whose directory a reader keeps open.
const (
	maxCredReaders = 2
	credChunk      = 16
)

// scan looks at the environments of the processes pids (through pe), then files, with
// up to maxCredReaders readers, and returns what each found, in the order of files and pids.
func (st *credState) scan(ctx context.Context, files []credFile, pe *procEnvs, pids []int) ([]fileScan, []procScan) {
	scans := make([]fileScan, len(files))
	var procs []procScan
	if len(pids) > 0 {
		procs = make([]procScan, len(pids))
	}
	total := len(files) + len(pids)
	var next atomic.Int64
	read := func() {
		r := &credReader{st: st}
		defer r.close()
		for {
			i := int(next.Add(credChunk)) - credChunk
			if i >= total {
				return
			}
			for j := i; j < min(i+credChunk, total); j++ {
				err := ctx.Err()
				switch k := j - len(pids); {
				case k < 0:
					if err != nil {
						procs[j].stopped = err
						continue
					}
					pe.scan(r, pids[j], &procs[j])
				case err != nil:
					scans[k].unread = true
				default:
					r.scanFile(files[k], &scans[k])
				}
			}
		}
	}
	n := min(runtime.GOMAXPROCS(0), maxCredReaders)
	if total <= credChunk {
		n = 1
	}
	var wg sync.WaitGroup
	for range n - 1 {
		wg.Go(read)
	}
	read()
	wg.Wait()
	return scans, procs
}

// merge adds what looking at file f found to the probe's tally, in queue order.
func (st *credState) merge(f credFile, sc *fileScan) {
	switch {
	case sc.unread:
		st.unread = append(st.unread, f.path)
	case sc.missing != nil:
		st.bad.add(f.path, sc.missing)
	case sc.link:
		st.odd.links = append(st.odd.links, f.path)
	case sc.special:
		st.odd.special = append(st.odd.special, f.path)
	case sc.skipped:
		st.skipped = append(st.skipped, f.path)
	}
	if sc.resolved == "" || st.seen[sc.resolved] {
		return
	}
	st.seen[sc.resolved] = true
	if sc.partial {
		st.odd.partial = append(st.odd.partial, f.path)
	}
	if sc.readErr != nil {
		st.bad.add(f.path, sc.readErr)
		return
	}
	st.scanned++
	cut := false
	for c, n := range sc.cut {
		st.cut[c] += n
		cut = true
	}
	for _, r := range sc.results {
		// Per check and per scan: the first in queue order are kept, the rest counted.
		if st.perCheck[r.Check] >= maxResultsPerCheck || len(st.results) >= maxSecretResults {
			st.cut[r.Check]++
			cut = true
			continue
		}
		st.perCheck[r.Check]++
		st.results = append(st.results, r)
	}
	if cut {
		st.cutFiles = append(st.cutFiles, f.path)
	}
	if sc.stopped > 0 {
		st.stopped = append(st.stopped, f.path)
	}
	if sc.perms {
		st.permsRan++
		st.permsOK = st.permsOK || sc.permsOK
	}
	for _, e := range sc.envFiles {
		if len(st.queue) < maxDirEntries*4 {
			st.queue = append(st.queue, e)
		} else if !st.queueFull {
			st.queueFull = true
			st.limits = append(st.limits, fmt.Sprintf("files named by EnvironmentFile= past the first %d files were not read (first: %s)", maxDirEntries*4, e.path))
		}
	}
}
