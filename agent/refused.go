package agent

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/agent/spool"
	"github.com/ec2sec/ec2sec/agent/state"
)

// resendArchivesFor bounds how long an archive Security Hub keeps refusing is sent again.
const resendArchivesFor = 24 * time.Hour

// refusedArchive decides what to do with a spooled finding Security Hub refused for good.
// An archived finding is the last word the agent says about a finding: the state no longer
// counts it as active, and forgets it once its result is gone, so nothing would ever archive
// it again and Security Hub would keep the older ACTIVE version for good. Such an archive is
// sent again as a new version, its UpdatedAt 1 ms after the refused one's: later, as an update
// must be, yet before any later report's (a scan may have started before this flush).
// It returns the finding's id, that version and its UpdatedAt, or ok false for anything else:
// not an archive, one the state has since superseded (a newer version is spooled or sent), or
// one refused for longer than resendArchivesFor (each new version is only 1 ms later, so its
// age is the refusal's): a refusal that outlasts a day of flushes is Security Hub's last word,
// which the sink has logged each time, and sending it again for ever would be noise.
func refusedArchive(s *state.State, raw json.RawMessage, now time.Time) (id string, again json.RawMessage, at time.Time, ok bool) {
	if len(raw) > sink.MaxFindingBytes {
		return "", nil, time.Time{}, false // refused before any call; a new version would be too
	}
	var f struct{ Id, UpdatedAt, RecordState string }
	if json.Unmarshal(raw, &f) != nil || f.Id == "" || f.RecordState != "ARCHIVED" {
		return "", nil, time.Time{}, false
	}
	updated, err := time.Parse(time.RFC3339Nano, f.UpdatedAt)
	if err != nil || now.Sub(updated) > resendArchivesFor {
		return "", nil, time.Time{}, false
	}
	if e, ok := s.Entries[f.Id]; ok && (e.Active || e.LastImported.After(updated)) {
		return "", nil, time.Time{}, false
	}
	at = updated.Add(time.Millisecond)
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return "", nil, time.Time{}, false
	}
	m["UpdatedAt"], _ = json.Marshal(asff.Stamp(at))
	again, err = json.Marshal(m)
	if err != nil {
		return "", nil, time.Time{}, false
	}
	return f.Id, again, at, true
}

// resendArchives spools new versions of refused archives (from refusedArchive) and commits
// them: the batch first, then the state that names it (and, for a finding still remembered,
// the version it last sent). A crash before the state is saved leaves the batch uncommitted
// (the next run removes it) and the refused archive still in its own batch, so the next flush
// meets the refusal again; the caller drops the refused items only after this returns nil.
func (r *Reporter) resendArchives(s *state.State, again []json.RawMessage, ats map[string]time.Time) error {
	if _, err := r.spool.Put(spool.Findings, again); err != nil {
		return fmt.Errorf("spool archives again: %w", err)
	}
	r.opts.at("respooled")
	for id, at := range ats {
		if e, ok := s.Entries[id]; ok {
			e.LastImported = at
		}
	}
	s.SpoolSeq = r.spool.Last()
	if err := s.Save(r.statePath()); err != nil {
		return fmt.Errorf("spool archives again: %w", err)
	}
	r.log.Warn("security hub refused archived findings; sending them again as new versions so they do not stay active", "count", len(again))
	return nil
}
