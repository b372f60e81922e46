package asff

import (
	"time"

	"github.com/ec2sec/ec2sec/probes"
)

// Record is one finding as the agent sends it in central mode (security_hub.mode: central):
// the result and the lifecycle's decision about it, without the host. The forwarder takes
// the host from the instance's AWS-signed identity document and builds the finding with
// Record.Finding, the code the agent itself uses in direct mode, so a finding means the same
// whichever way it travelled. Like the result, a record never holds a secret.
type Record struct {
	// ID is the result's stable id, host/check/hash: the finding's Id.
	ID        string        `json:"id"`
	Lifecycle string        `json:"lifecycle"` // new, changed, refresh, resolved (agent/state)
	Result    probes.Result `json:"result"`
	// The finding's timestamps, from the scan and the lifecycle state.
	FirstObserved time.Time `json:"first_observed"`
	LastObserved  time.Time `json:"last_observed"`
	Created       time.Time `json:"created"`
	Updated       time.Time `json:"updated"`
	// Archived re-imports the finding as PASSED and ARCHIVED, with ArchiveReason as its
	// description.
	Archived      bool   `json:"archived,omitempty"`
	ArchiveReason string `json:"archive_reason,omitempty"`
	AgentVersion  string `json:"agent_version"`
}

// Times returns the record's finding timestamps.
func (r Record) Times() Times {
	return Times{FirstObserved: r.FirstObserved, LastObserved: r.LastObserved, Created: r.Created, Updated: r.Updated}
}

// Finding builds the ASFF finding of the record for host h.
func (r Record) Finding(h Host) Finding {
	res := r.Result
	res.ID = r.ID
	return FromResult(res, h, r.Times(), Options{AgentVersion: r.AgentVersion, Archived: r.Archived, ArchiveReason: r.ArchiveReason})
}
