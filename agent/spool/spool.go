// Package spool is the agent's durable outbox: everything to deliver is written here first
// (temp file, fsync, rename, fsync dir), sent from here, and removed only once accepted, so a
// crash or kill -9 at any point loses nothing. Files are 0600 in a 0700 directory. The spool is
// bounded: past the bound the oldest log batches go first, counted; findings are never dropped.
package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ec2sec/ec2sec/internal/safefile"
)

// Kind is what a batch holds; each kind is its own FIFO queue.
type Kind string

// The kinds of batches.
const (
	Logs     Kind = "logs"     // CloudWatch Logs events; may be dropped past the bound
	Findings Kind = "findings" // Security Hub findings; never dropped
)

// maxFile bounds one batch file when read back, so a corrupt or planted huge file cannot
// make the agent allocate without limit.
const maxFile = 64 << 20

// Spool is a directory of batch files named <seq>-<kind>.json, oldest first. Its methods are
// safe for concurrent use within one process; across processes the caller holds a lock.
type Spool struct {
	dir string
	max int64
	mu  sync.Mutex
	seq uint64
}

// Batch is one file: a kind and its items, each an opaque JSON value.
type Batch struct {
	Kind  Kind              `json:"kind"`
	Items []json.RawMessage `json:"items"`
}

// Open opens (creating with mode 0700) the spool directory dir, bounded to maxBytes, and
// removes temp files a crash left behind.
func Open(dir string, maxBytes int64) (*Spool, error) {
	// Owned by the agent's user, not a symlink (safefile.PrivateDir): batches planted by
	// anyone else would be delivered as this host's findings.
	if err := safefile.PrivateDir(dir); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	s := &Spool{dir: dir, max: maxBytes}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(dir, name)) // a write that never completed: its data is in no queue yet
			continue
		}
		if seq, _, ok := parseName(name); ok && seq > s.seq {
			s.seq = seq
		}
	}
	return s, nil
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

func parseName(name string) (uint64, Kind, bool) {
	base, ok := strings.CutSuffix(name, ".json")
	if !ok {
		return 0, "", false
	}
	num, kind, ok := strings.Cut(base, "-")
	if !ok || (Kind(kind) != Logs && Kind(kind) != Findings) {
		return 0, "", false
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return seq, Kind(kind), true
}

// Put writes a new batch durably at the end of its queue. Before writing it makes room for
// the batch by dropping the oldest log batches; it returns how many log items it dropped.
// Findings are written even past the bound.
func (s *Spool) Put(kind Kind, items []json.RawMessage) (dropped int, err error) {
	if len(items) == 0 {
		return 0, nil
	}
	b, err := json.Marshal(Batch{Kind: kind, Items: items})
	if err != nil {
		return 0, fmt.Errorf("spool: encode batch: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dropped, err = s.makeRoom(int64(len(b)))
	if err != nil {
		return dropped, err
	}
	s.seq++
	name := fmt.Sprintf("%020d-%s.json", s.seq, kind)
	return dropped, s.write(name, b)
}

// makeRoom drops the oldest log batches until need more bytes fit under the bound.
func (s *Spool) makeRoom(need int64) (int, error) {
	files, total, err := s.list("")
	if err != nil {
		return 0, err
	}
	dropped := 0
	for _, f := range files {
		if total+need <= s.max {
			break
		}
		if f.kind != Logs {
			continue
		}
		n := 0
		if b, err := s.Read(f.name); err == nil {
			n = len(b.Items)
		}
		if err := os.Remove(filepath.Join(s.dir, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return dropped, fmt.Errorf("spool: drop %s: %w", f.name, err)
		}
		total -= f.size
		dropped += n
	}
	return dropped, nil
}

// write stores b as name atomically and durably: temp file, fsync, rename, fsync dir.
func (s *Spool) write(name string, b []byte) error {
	return WriteFile(filepath.Join(s.dir, name), b)
}

// WriteFile writes b to path atomically and durably, mode 0600: a reader sees the old
// content or the new, never a mix, even after a crash.
func WriteFile(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := f.Write(b); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

type file struct {
	name string
	kind Kind
	seq  uint64
	size int64
}

// list returns the batch files of kind ("" = all), oldest first, and the spool's total size.
func (s *Spool) list(kind Kind) ([]file, int64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, 0, fmt.Errorf("spool %s: %w", s.dir, err)
	}
	var out []file
	var total int64
	for _, e := range entries {
		seq, k, ok := parseName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		total += fi.Size()
		if kind == "" || k == kind {
			out = append(out, file{e.Name(), k, seq, fi.Size()})
		}
	}
	slices.SortFunc(out, func(a, b file) int {
		if a.seq < b.seq {
			return -1
		}
		if a.seq > b.seq {
			return 1
		}
		return 0
	})
	return out, total, nil
}

// Pending returns the names of kind's batch files, oldest first.
func (s *Spool) Pending(kind Kind) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	files, _, err := s.list(kind)
	var names []string
	for _, f := range files {
		names = append(names, f.name)
	}
	return names, err
}

// Size returns the number of batch files and their total bytes.
func (s *Spool) Size() (int, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	files, total, err := s.list("")
	return len(files), total, err
}

// Read returns the batch stored as name. A file that is not a valid batch is an error; the
// caller removes it (with Replace(name, nil)) so one bad file cannot block the queue.
func (s *Spool) Read(name string) (Batch, error) {
	p := filepath.Join(s.dir, name)
	// A batch must be the agent's own file (no link, FIFO or file of another user).
	f, fi, err := safefile.Open(p, os.O_RDONLY, 0, safefile.Agent)
	if err != nil {
		return Batch{}, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if fi.Size() > maxFile {
		return Batch{}, fmt.Errorf("spool %s: not a regular file of at most %d bytes", p, maxFile)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return Batch{}, fmt.Errorf("spool %s: %w", p, err)
	}
	var batch Batch
	if err := json.Unmarshal(b, &batch); err != nil {
		return Batch{}, fmt.Errorf("spool %s: %w", p, err)
	}
	return batch, nil
}

// Replace keeps only remaining of batch name (atomically), removing the file when nothing
// remains. Call it after a send with the items that were not accepted.
func (s *Spool) Replace(name string, kind Kind, remaining []json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := filepath.Join(s.dir, name)
	if len(remaining) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		return syncDir(s.dir)
	}
	b, err := json.Marshal(Batch{Kind: kind, Items: remaining})
	if err != nil {
		return fmt.Errorf("spool: encode batch: %w", err)
	}
	return s.write(name, b)
}

// MakeRoom drops the oldest log batches until need more bytes fit under the bound, and
// returns how many log items it dropped. Findings are never dropped.
func (s *Spool) MakeRoom(need int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.makeRoom(need)
}

// Last returns the sequence number of the newest batch written.
func (s *Spool) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// Commit makes the batches up to seq the committed ones: batches after seq were written by a
// report whose state was never saved (a crash in between) and are removed, since the next
// report produces them again from the unchanged state; and new batches number after seq even
// when the spool had emptied, so the rule holds across restarts. It returns how many batches
// it removed.
func (s *Spool) Commit(seq uint64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	files, _, err := s.list("")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range files {
		if f.seq > seq {
			if err := os.Remove(filepath.Join(s.dir, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return n, fmt.Errorf("spool: %w", err)
			}
			n++
		}
	}
	s.seq = max(s.seq, seq)
	if n > 0 {
		return n, syncDir(s.dir)
	}
	return 0, nil
}

// Filter rewrites the batches of kind numbered before seq, keeping only the items keep
// accepts, and removes batches left empty. It returns how many items it removed. The caller
// uses it to drop findings a newer batch supersedes; a crash midway leaves some older copies,
// which is harmless.
func (s *Spool) Filter(kind Kind, before uint64, keep func(json.RawMessage) bool) (int, error) {
	s.mu.Lock()
	files, _, err := s.list(kind)
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, f := range files {
		if f.seq >= before {
			continue
		}
		b, err := s.Read(f.name)
		if err != nil {
			continue // Flush deals with unreadable batches
		}
		kept := b.Items[:0:0]
		for _, it := range b.Items {
			if keep(it) {
				kept = append(kept, it)
			}
		}
		if len(kept) == len(b.Items) {
			continue
		}
		if err := s.Replace(f.name, kind, kept); err != nil {
			return removed, err
		}
		removed += len(b.Items) - len(kept)
	}
	return removed, nil
}
