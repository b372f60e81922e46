package imdswatch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Window is how far back the summary looks: the checks ask "any IMDSv1 call in the last
// seven days?".
const Window = 7 * 24 * time.Hour

// MaxCallers caps the table: past it the caller seen longest ago makes room (and Evicted
// counts it), so a host with a storm of short-lived callers stays bounded.
const MaxCallers = 256

// maxSegments bounds the watch history: restarts beyond it merge the oldest gaps.
const maxSegments = 64

// Caller is one process identity that called IMDS, aggregated over its requests.
type Caller struct {
	// Key is a hash of what makes the caller (executable, user, container or unit, network
	// namespace): the same program run again is the same caller.
	Key string `json:"key"`
	Identity
	Dest      string    `json:"dest"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Counts per kind; V1Creds counts v1 requests for iam/security-credentials/, Creds all
	// requests for it.
	Token   uint64 `json:"token"`
	V2      uint64 `json:"v2"`
	V1      uint64 `json:"v1"`
	Creds   uint64 `json:"creds"`
	V1Creds uint64 `json:"v1_creds"`
	// LastV1 is the last IMDSv1 request (zero when none).
	LastV1 time.Time `json:"last_v1,omitzero"`
	// Truncated counts requests whose headers were longer than the kernel reads.
	Truncated uint64 `json:"truncated,omitempty"`
}

// Count is the number of requests of all kinds.
func (c *Caller) Count() uint64 { return c.Token + c.V2 + c.V1 }

// LastKind is the most telling kind this caller used: v1 if it ever did.
func (c *Caller) LastKind() string {
	switch {
	case c.V1 > 0:
		return "v1"
	case c.V2 > 0:
		return "v2"
	}
	return "token"
}

// Segment is a span of time the watcher was attached.
type Segment struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Summary is the rolling record the daemon keeps in the state dir and the checks read.
type Summary struct {
	Version int `json:"version"`
	// Watching lists when the watcher was attached, oldest first; the last one is open
	// while Running.
	Watching []Segment `json:"watching"`
	Running  bool      `json:"running"`
	// Unavailable is why the watcher could not load, when it could not (the checks are
	// NOT_AVAILABLE with it while no window was watched).
	Unavailable string    `json:"unavailable,omitempty"`
	Updated     time.Time `json:"updated"`
	Callers     []*Caller `json:"callers"`
	Evicted     uint64    `json:"evicted,omitempty"`
	Dropped     uint64    `json:"dropped,omitempty"`
}

// SummaryVersion is the file format's version.
const SummaryVersion = 1

// SummaryFile is the summary's name in the state dir.
const SummaryFile = "imdswatch.json"

// Observed is how long the watcher watched within the window ending at now.
func (s *Summary) Observed(now time.Time) time.Duration {
	var d time.Duration
	from := now.Add(-Window)
	for _, g := range s.Watching {
		a, b := g.From, g.To
		if a.Before(from) {
			a = from
		}
		if b.After(now) {
			b = now
		}
		if b.After(a) {
			d += b.Sub(a)
		}
	}
	return d
}

// Since is when the window's watching began (zero when it never did).
func (s *Summary) Since(now time.Time) time.Time {
	from := now.Add(-Window)
	for _, g := range s.Watching {
		if g.To.After(from) {
			if g.From.Before(from) {
				return from
			}
			return g.From
		}
	}
	return time.Time{}
}

// Table is the live caller table of a running watcher, safe for concurrent use.
type Table struct {
	mu  sync.Mutex
	sum Summary
	now func() time.Time
	// dirty: changed since the last Snapshot was saved.
	dirty bool
}

// NewTable continues prev (nil = a new history): the watch segments and callers still in
// the window are kept, and a new segment starts now.
func NewTable(prev *Summary, now func() time.Time) *Table {
	if now == nil {
		now = time.Now
	}
	t := &Table{now: now}
	if prev != nil {
		t.sum = *prev
		t.sum.Callers = slices.Clone(prev.Callers)
		t.sum.Watching = slices.Clone(prev.Watching)
	}
	t.sum.Version = SummaryVersion
	t.sum.Unavailable = ""
	n := now().UTC()
	t.sum.Watching = append(t.sum.Watching, Segment{From: n, To: n})
	t.sum.Running = true
	t.prune(n)
	t.dirty = true
	return t
}

// Add records one request by id.
func (t *Table) Add(e Event, id Identity, dest string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.now().UTC()
	key := CallerKey(id)
	i := slices.IndexFunc(t.sum.Callers, func(c *Caller) bool { return c.Key == key })
	var c *Caller
	if i >= 0 {
		c = t.sum.Callers[i]
		// The latest process of this caller describes it best (its pid, parents, cmdline),
		// unless it was gone before it could be looked at.
		if !id.Gone {
			c.Identity = id
		}
	} else {
		if len(t.sum.Callers) >= MaxCallers {
			oldest := 0
			for j, o := range t.sum.Callers {
				if o.LastSeen.Before(t.sum.Callers[oldest].LastSeen) {
					oldest = j
				}
			}
			t.sum.Callers = slices.Delete(t.sum.Callers, oldest, oldest+1)
			t.sum.Evicted++
		}
		c = &Caller{Key: key, Identity: id, FirstSeen: n}
		t.sum.Callers = append(t.sum.Callers, c)
	}
	c.Dest, c.LastSeen = dest, n
	switch e.Kind {
	case KindToken:
		c.Token++
	case KindV2:
		c.V2++
	case KindV1:
		c.V1++
		c.LastV1 = n
		if e.Flags&FlagCreds != 0 {
			c.V1Creds++
		}
	}
	if e.Flags&FlagCreds != 0 {
		c.Creds++
	}
	if e.Flags&FlagTruncated != 0 {
		c.Truncated++
	}
	t.dirty = true
}

// SetDropped records the kernel's count of requests lost to a full ring buffer.
func (t *Table) SetDropped(n uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n != t.sum.Dropped {
		t.sum.Dropped, t.dirty = n, true
	}
}

// Snapshot returns a copy of the summary as of now (the open segment ends now).
func (t *Table) Snapshot() *Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snapshot()
}

func (t *Table) snapshot() *Summary {
	n := t.now().UTC()
	if len(t.sum.Watching) > 0 && t.sum.Running {
		t.sum.Watching[len(t.sum.Watching)-1].To = n
	}
	t.prune(n)
	s := t.sum
	s.Updated = n
	s.Watching = slices.Clone(t.sum.Watching)
	s.Callers = make([]*Caller, len(t.sum.Callers))
	for i, c := range t.sum.Callers {
		cc := *c
		cc.Parents = slices.Clone(c.Parents)
		s.Callers[i] = &cc
	}
	return &s
}

// Stop closes the open segment: the watcher is no longer attached.
func (t *Table) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.snapshot()
	t.sum.Running = false
	t.dirty = true
}

// Dirty says whether something changed since the last MarkSaved.
func (t *Table) Dirty() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dirty
}

// MarkSaved records that the snapshot was written.
func (t *Table) MarkSaved() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dirty = false
}

// prune drops callers and segments older than the window, and merges segments past
// maxSegments (a gap then counts as watched: bounded, and noted in the docs).
func (t *Table) prune(now time.Time) {
	from := now.Add(-Window)
	t.sum.Callers = slices.DeleteFunc(t.sum.Callers, func(c *Caller) bool { return c.LastSeen.Before(from) })
	t.sum.Watching = slices.DeleteFunc(t.sum.Watching, func(g Segment) bool { return g.To.Before(from) })
	for len(t.sum.Watching) > maxSegments {
		t.sum.Watching[1].From = t.sum.Watching[0].From
		t.sum.Watching = t.sum.Watching[1:]
	}
}

// CallerKey is the stable key of a caller identity.
func CallerKey(id Identity) string {
	name := id.Exe
	if name == "" {
		name = "comm:" + id.Comm
	}
	h := sha256.New()
	for _, s := range []string{name, strconv.FormatUint(uint64(id.UID), 10), id.Container, id.Unit, id.Netns} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// LoadSummary reads the summary from path; a missing file is (nil, nil).
func LoadSummary(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("IMDS watch summary: %w", err)
	}
	if len(b) > 8<<20 {
		return nil, fmt.Errorf("IMDS watch summary %s: %d bytes, too large", path, len(b))
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("IMDS watch summary %s: %w", path, err)
	}
	if s.Version != SummaryVersion {
		return nil, fmt.Errorf("IMDS watch summary %s: version %d, want %d", path, s.Version, SummaryVersion)
	}
	s.Callers = slices.DeleteFunc(s.Callers, func(c *Caller) bool { return c == nil })
	if len(s.Callers) > MaxCallers {
		s.Callers = s.Callers[:MaxCallers]
	}
	return &s, nil
}
