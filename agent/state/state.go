// Package state is the finding lifecycle: it remembers what was reported for each result id
// and, given a new scan, decides what to send: new and changed results (CloudWatch Logs and
// Security Hub), weekly refreshes (DefaultRefresh) of still-failing findings (so they never expire in Security
// Hub), and archives of findings that passed or are gone. A partial scan never archives what
// the probes it did not run had reported.
//
// Exposures are the exception to "gone is fixed". A FAILED result of a secret check (the
// catalog's Check.Exposure) is a secret the agent saw, and it may have been read while it was
// there. When a scan no longer sees it, its finding is re-imported still FAILED and ACTIVE,
// saying when it was last seen and that the value must be rotated (Lifecycle Unseen); it is
// never archived, and it is refreshed weekly like any failing finding, so it never expires.
// A person resolves it in Security Hub (Workflow RESOLVED) after rotating: the agent never
// writes Workflow, and re-imports that keep FAILED and ACTIVE leave a person's workflow
// status as it is. The state keeps at most Options.MaxExposures exposures no longer seen; past
// that the ones last seen longest ago are sent once more (Lifecycle Untracked, still FAILED
// and ACTIVE, saying the agent stops refreshing them) and forgotten. The rules are here, in
// Apply, so every sender (the Reporter, a forwarder) applies the same ones.
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
	"slices"
	"time"

	"github.com/ec2sec/ec2sec/agent/spool"
	"github.com/ec2sec/ec2sec/internal/safefile"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// Version of the state file format.
const Version = 1

// maxFile bounds the state file when read; a real one holds one entry per result.
const maxFile = 64 << 20

// DefaultRefresh is how old a still-failing finding's (or an exposure's) last import may get
// before it is re-imported. Weekly, for cost: Security Hub bills every ingested finding, and
// a daily re-import of each still-failing finding was two thirds of ec2sec's telemetry cost
// (docs/fleet.md); Security Hub deletes a finding only 90 days after its last update, so a
// weekly refresh keeps it alive with a wide margin. An hour short of 7 days so that, scanning
// hourly, a finding is refreshed at least weekly.
const DefaultRefresh = 7*24*time.Hour - time.Hour

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
	// Unseen is when a scan first no longer saw this exposure (zero while it is seen); Result
	// and LastObserved stay those of the last scan that saw it.
	Unseen time.Time `json:"unseen,omitzero"`
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
	// CheckMetricsAt is when the failed-by-check metrics were last spooled (they are
	// published once per agent.CheckMetricsEvery).
	CheckMetricsAt time.Time `json:"check_metrics_at,omitzero"`
	// exists: loaded from a file (not a fresh state).
	exists bool
}

// Exists reports whether the state was loaded from a file.
func (s *State) Exists() bool { return s.exists }

// Load reads the state file at path; a missing file is an empty state.
func Load(path string) (*State, error) {
	s := &State{Version: Version, Entries: map[string]*Entry{}}
	// The agent's own file only: no link, FIFO or file another user planted (safefile.Agent).
	f, _, err := safefile.Open(path, os.O_RDONLY, 0, safefile.Agent)
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
	// Unseen: an exposure the scan no longer sees; still FAILED and ACTIVE, until a person
	// resolves it.
	Unseen Lifecycle = "unseen"
	// Untracked: an exposure no longer seen that the state forgets (past MaxExposures); sent a
	// last time, still FAILED and ACTIVE, saying it is no longer refreshed.
	Untracked Lifecycle = "untracked"
)

// DefaultMaxExposures bounds the exposures no longer seen that the state keeps re-asserting.
// A host has a handful; a thousand keeps the state file near a megabyte.
const DefaultMaxExposures = 1000

// Change is one thing to report.
type Change struct {
	// Result is what to send: for a resolved one, PASSED and why; for an exposure no longer
	// seen, the last result that saw it, FAILED, with the text of its lifecycle.
	Result    probes.Result
	Lifecycle Lifecycle
	// Log: send a CloudWatch Logs event. Import: send a Security Hub finding, archived when
	// Archive is set.
	Log, Import, Archive bool
	FirstObserved        time.Time
	LastObserved         time.Time // for an exposure no longer seen: when it was last seen
	// Exposure: an exposure no longer seen (Unseen, Untracked, or its Refresh).
	Exposure bool
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
	// MaxExposures bounds the exposures no longer seen kept in the state (default
	// DefaultMaxExposures).
	MaxExposures int
}

// active reports whether a status is a problem Security Hub should show.
func active(s probes.Status) bool { return s == probes.Failed || s == probes.Warning }

// IsExposure reports whether r is an exposure: a secret a scan saw (a FAILED result of a
// check the catalog marks Exposure). Its finding is never archived by the agent.
func IsExposure(r probes.Result) bool {
	return r.Status == probes.Failed && probes.IsExposure(r.Check)
}

// ExposureResult is what is sent for exposure r, last seen at lastSeen, once scans from
// unseen on no longer see it: still FAILED, the text saying when it was last seen and that the value
// must be rotated, then what was found (the reason never holds a secret value). Evidence
// last_seen and unseen_since carry the times.
func ExposureResult(r probes.Result, lastSeen, unseen time.Time, l Lifecycle) probes.Result {
	r.Status = probes.Failed
	lead := "No longer seen since the scan at %s; last seen at %s."
	if l == Untracked {
		lead += " The agent keeps too many exposures no longer seen and stops refreshing this one: it stays active until resolved, or until Security Hub drops it 90 days after this update."
	}
	r.Reason = fmt.Sprintf(lead+" The value may have been read while it was there: rotate it, then resolve this finding in Security Hub (workflow status RESOLVED). Found: %s",
		unseen.UTC().Format(time.RFC3339), lastSeen.UTC().Format(time.RFC3339), r.Reason)
	return r.With("last_seen", lastSeen.UTC().Format(time.RFC3339)).With("unseen_since", unseen.UTC().Format(time.RFC3339))
}

// ResolvedResult is what is sent for r once a scan at now no longer reports it (not an
// exposure): PASSED, saying why. Security Hub gets it archived; CloudWatch Logs gets the
// new status, not the old one.
func ResolvedResult(r probes.Result, now time.Time) probes.Result {
	r.Status = probes.Passed
	r.Reason = fmt.Sprintf("No longer found by the scan at %s: the resource is gone or fixed.", now.UTC().Format(time.RFC3339))
	return r
}

// Apply diffs the scan against the state, updates the state as if every change were
// delivered (the caller spools the changes durably before saving the state), and returns
// the changes in a stable order: the scan's results first, then resolved ones and exposures
// no longer seen.
func (s *State) Apply(sc Scan, o Options) []Change {
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.MaxExposures <= 0 {
		o.MaxExposures = DefaultMaxExposures
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
	imported := func(c Change, e *Entry) {
		if c.Import && !o.NoImport {
			e.Active, e.LastImported = !c.Archive, now
		}
	}
	for _, r := range sc.Results {
		if seen[r.ID] {
			continue // duplicate id within one scan: a probe bug, report it once
		}
		e, ok := s.Entries[r.ID]
		if ok && IsExposure(e.Result) && !IsExposure(r) {
			// The same id no longer a secret: not a fix of the exposure. Left unseen, it is
			// re-asserted below like any exposure the scan no longer sees.
			continue
		}
		seen[r.ID] = true
		h := Hash(r)
		if !ok {
			e = &Entry{FirstObserved: now}
			s.Entries[r.ID] = e
		}
		c := Change{Result: r, FirstObserved: e.FirstObserved, LastObserved: now}
		switch {
		case !ok:
			c.Lifecycle, c.Log = New, true
		case e.Hash != h || !e.Unseen.IsZero():
			c.Lifecycle, c.Log = Changed, true // an exposure seen again is news too
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
		e.Result, e.Hash, e.LastObserved, e.Unseen = r, h, now, time.Time{}
		imported(c, e)
		if c.Lifecycle != "" {
			out = append(out, c)
		}
	}
	var unseen []string // exposures no longer seen, kept
	for _, id := range sortedKeys(s.Entries) {
		e := s.Entries[id]
		if seen[id] {
			continue
		}
		looked := sc.ProbesOK[e.Result.Probe] && !unsure[e.Result.Check]
		if IsExposure(e.Result) {
			c := Change{Result: e.Result, Exposure: true, Import: true, FirstObserved: e.FirstObserved, LastObserved: e.LastObserved}
			switch {
			case e.Unseen.IsZero() && looked:
				e.Unseen, c.Lifecycle, c.Log = now, Unseen, true
			case !e.Unseen.IsZero() && now.Sub(e.LastImported) >= o.Refresh:
				// Refreshed whether or not its probe ran: it is about the past.
				c.Lifecycle = Refresh
			}
			if !e.Unseen.IsZero() {
				unseen = append(unseen, id)
			}
			if c.Lifecycle != "" {
				c.Result = ExposureResult(e.Result, e.LastObserved, e.Unseen, c.Lifecycle)
				imported(c, e)
				out = append(out, c)
			}
			continue
		}
		if !looked {
			continue // its probe/check did not fully look this time
		}
		if active(e.Result.Status) || e.Active {
			out = append(out, Change{
				Result: ResolvedResult(e.Result, now), Lifecycle: Resolved, Log: true,
				Import: e.Active, Archive: e.Active,
				FirstObserved: e.FirstObserved, LastObserved: e.LastObserved,
			})
		}
		delete(s.Entries, id)
	}
	return s.untrack(out, unseen, now, o)
}

// untrack keeps the state bounded: past o.MaxExposures exposures no longer seen, the ones
// last seen longest ago are forgotten, each sent a last time (Untracked) in place of any other
// change this scan made for it, so no exposure leaves the state unsaid.
func (s *State) untrack(out []Change, unseen []string, now time.Time, o Options) []Change {
	if len(unseen) <= o.MaxExposures {
		return out
	}
	slices.SortStableFunc(unseen, func(a, b string) int {
		return s.Entries[a].LastObserved.Compare(s.Entries[b].LastObserved)
	})
	drop := map[string]bool{}
	for _, id := range unseen[:len(unseen)-o.MaxExposures] {
		drop[id] = true
	}
	out = slices.DeleteFunc(out, func(c Change) bool { return drop[c.Result.ID] })
	for _, id := range sortedKeys(drop) {
		e := s.Entries[id]
		out = append(out, Change{
			Result: ExposureResult(e.Result, e.LastObserved, e.Unseen, Untracked), Lifecycle: Untracked,
			Exposure: true, Log: true, Import: true, FirstObserved: e.FirstObserved, LastObserved: e.LastObserved,
		})
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
