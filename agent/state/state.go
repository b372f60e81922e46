// Package state is the finding lifecycle: it remembers what was reported for each result id
// and, given a new scan, decides what to send: new and changed results (CloudWatch Logs and
// Security Hub), daily refreshes of still-failing findings (so they never expire in Security
// Hub), and archives of findings that passed or are gone. A partial scan never archives what
// the probes it did not run had reported.
package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/ec2sec/ec2sec/agent/spool"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// Version of the state file format.
const Version = 1

// maxFile bounds the state file when read; a real one holds one entry per result.
const maxFile = 64 << 20

// DefaultRefresh is how old a still-failing finding's last import may get before it is
// re-imported. Below 24 h so that, scanning hourly, a finding is refreshed at least daily.
const DefaultRefresh = 23 * time.Hour

// Entry is what was last reported for one result id.
type Entry struct {
	Result        probes.Result `json:"result"`
	Hash          string        `json:"hash"`
	FirstObserved time.Time     `json:"first_observed"`
	LastObserved  time.Time     `json:"last_observed"`
	// Active: an ACTIVE finding for this id was sent to Security Hub and not yet archived.
	Active bool `json:"active"`
	// LastImported is the UpdatedAt of the last finding sent for this id.
	LastImported time.Time `json:"last_imported,omitzero"`
}

// State is the lifecycle memory of one host.
type State struct {
	Version int               `json:"version"`
	Host    string            `json:"host"`
	Entries map[string]*Entry `json:"entries"`
	// Identity is the host the spooled batches are for, so a restarted agent can deliver
	// them before its first scan.
	Identity metadata.Identity `json:"identity"`
	// SpoolSeq is the newest spool batch written for the reports this state reflects.
	SpoolSeq uint64 `json:"spool_seq"`
	// exists: loaded from a file (not a fresh state).
	exists bool
}

// Exists reports whether the state was loaded from a file.
func (s *State) Exists() bool { return s.exists }

// Load reads the state file at path; a missing file is an empty state.
func Load(path string) (*State, error) {
	s := &State{Version: Version, Entries: map[string]*Entry{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("state %s: larger than %d bytes", path, maxFile)
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	if s.Entries == nil {
		s.Entries = map[string]*Entry{}
	}
	s.exists = true
	return s, nil
}

// Save writes the state durably and atomically (mode 0600).
func (s *State) Save(path string) error {
	s.Version = Version
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return spool.WriteFile(path, b)
}

// Lifecycle says why a result is reported.
type Lifecycle string

// Lifecycles.
const (
	New      Lifecycle = "new"
	Changed  Lifecycle = "changed"
	Refresh  Lifecycle = "refresh"  // unchanged, still failing, re-imported so it does not expire
	Resolved Lifecycle = "resolved" // no longer reported: fixed or gone
)

// Change is one thing to report.
type Change struct {
	Result    probes.Result
	Lifecycle Lifecycle
	// Log: send a CloudWatch Logs event. Import: send a Security Hub finding, archived when
	// Archive is set.
	Log, Import, Archive bool
	FirstObserved        time.Time
	LastObserved         time.Time
}

// Scan is what Apply needs of a scan.
type Scan struct {
	Host      string // the host key (instance id or hostname); a different host starts afresh
	ScannedAt time.Time
	Results   []probes.Result
	// ProbesOK names the probes that ran to completion in this scan: only their checks can
	// have resolved by absence.
	ProbesOK map[string]bool
}

// Options tune Apply.
type Options struct {
	Refresh time.Duration // default DefaultRefresh
	// NoImport: findings cannot be sent (Security Hub off, or not on EC2). Changes are then
	// not marked as imported, so enabling Security Hub later sends them.
	NoImport bool
}

// active reports whether a status is a problem Security Hub should show.
func active(s probes.Status) bool { return s == probes.Failed || s == probes.Warning }

// Apply diffs the scan against the state, updates the state as if every change were
// delivered (the caller spools the changes durably before saving the state), and returns
// the changes in a stable order: the scan's results first, then resolved ones.
func (s *State) Apply(sc Scan, o Options) []Change {
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if s.Entries == nil || s.Host != sc.Host {
		// Another host's memory (a cloned image): its findings are not ours to archive.
		s.Entries = map[string]*Entry{}
		s.Host = sc.Host
	}
	now := sc.ScannedAt
	seen := map[string]bool{}
	unsure := map[string]bool{} // checks that could not look at everything this scan
	var out []Change
	for _, r := range sc.Results {
		if r.Status == probes.NotAvailable {
			unsure[r.Check] = true
		}
	}
	for _, r := range sc.Results {
		if seen[r.ID] {
			continue // duplicate id within one scan: a probe bug, report it once
		}
		seen[r.ID] = true
		h := Hash(r)
		e, ok := s.Entries[r.ID]
		if !ok {
			e = &Entry{FirstObserved: now}
			s.Entries[r.ID] = e
		}
		c := Change{Result: r, FirstObserved: e.FirstObserved, LastObserved: now}
		switch {
		case !ok:
			c.Lifecycle, c.Log = New, true
		case e.Hash != h:
			c.Lifecycle, c.Log = Changed, true
		case active(r.Status) && now.Sub(e.LastImported) >= o.Refresh:
			c.Lifecycle = Refresh
		}
		switch {
		case c.Lifecycle == "":
		case active(r.Status):
			c.Import = true
		case r.Status == probes.Passed && e.Active:
			c.Import, c.Archive = true, true // fixed
		}
		// NOT_AVAILABLE leaves an active finding as it is: not knowing is not fixed.
		e.Result, e.Hash, e.LastObserved = r, h, now
		if c.Import && !o.NoImport {
			e.Active, e.LastImported = !c.Archive, now
		}
		if c.Lifecycle != "" {
			out = append(out, c)
		}
	}
	for _, id := range sortedKeys(s.Entries) {
		e := s.Entries[id]
		if seen[id] || !sc.ProbesOK[e.Result.Probe] || unsure[e.Result.Check] {
			continue // still reported, or its probe/check did not fully look this time
		}
		if active(e.Result.Status) || e.Active {
			out = append(out, Change{
				Result: e.Result, Lifecycle: Resolved, Log: true,
				Import: e.Active, Archive: e.Active,
				FirstObserved: e.FirstObserved, LastObserved: e.LastObserved,
			})
		}
		delete(s.Entries, id)
	}
	return out
}

// Hash is what "changed" means: status, severity, resource, reason, title and evidence.
func Hash(r probes.Result) string {
	b, _ := json.Marshal([]any{r.Status, r.Severity, r.Resource, r.Reason, r.Title, r.Evidence})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}
