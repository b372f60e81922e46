package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
)

// Central mode (security_hub.mode: central): findings travel as CloudWatch Logs events to
// the central forwarder (cmd/ec2sec-forwarder), which alone may import into Security Hub.
// Each event is self-contained: the instance's AWS-signed identity and up to
// MaxRecordsPerEvent finding records. A subscription delivers whole events, never parts, so
// the forwarder can verify every event on its own, whichever other events share its batch.

// FindingsEventType is the "type" of a findings event.
const FindingsEventType = "findings"

// FindingsEventVersion is the envelope's format version ("v").
const FindingsEventVersion = 1

// Bounds of one findings event: the forwarder rejects larger ones as oversized.
const (
	// MaxRecordsPerEvent bounds the records of one event.
	MaxRecordsPerEvent = 500
	// MaxFindingsEventBytes bounds one event's message, below CloudWatch's event limit.
	MaxFindingsEventBytes = 200 << 10
	// MaxRecordBytes is the largest record an event carries with its identity.
	MaxRecordBytes = MaxFindingsEventBytes - 8<<10
)

// Proof is the instance's identity as AWS signs it: IMDS dynamic/instance-identity/document,
// and dynamic/instance-identity/rsa2048, its PKCS#7 signature (base64, as IMDS serves it).
// Neither is a secret: both are the same on every read, and only the instance itself can
// read them from IMDS.
type Proof struct {
	Document string `json:"document"`
	RSA2048  string `json:"rsa2048"`
}

// FindingsEvent is the message of a findings event.
type FindingsEvent struct {
	Type     string            `json:"type"`
	Version  int               `json:"v"`
	Identity Proof             `json:"identity"`
	Findings []json.RawMessage `json:"findings"` // asff.Record
}

// ProofFunc reads the instance's signed identity.
type ProofFunc func(context.Context) (Proof, error)

// Central is the findings sink of central mode: it sends finding records (asff.Record) as
// findings events through a CloudWatch sink, the identity attached once per event.
type Central struct {
	cw    *CloudWatch
	proof ProofFunc
	log   *slog.Logger

	mu     sync.Mutex
	cached *Proof // the identity document never changes for an instance's life
}

// NewCentral returns a central sink writing through cw.
func NewCentral(cw *CloudWatch, proof ProofFunc, log *slog.Logger) *Central {
	return &Central{cw: cw, proof: proof, log: log}
}

// Name implements Sink.
func (c *Central) Name() string { return "security_hub" }

func (c *Central) identity(ctx context.Context) (Proof, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != nil {
		return *c.cached, nil
	}
	p, err := c.proof(ctx)
	if err != nil {
		return Proof{}, fmt.Errorf("signed instance identity: %w", err)
	}
	if p.Document == "" || p.RSA2048 == "" {
		return Proof{}, fmt.Errorf("signed instance identity: IMDS gave an empty document or signature")
	}
	c.cached = &p
	return p, nil
}

// Send implements Sink: items are finding records; each findings event's outcome is that of
// every record in it.
func (c *Central) Send(ctx context.Context, items []json.RawMessage) ([]Outcome, error) {
	out := make([]Outcome, len(items))
	var ok []int
	for i, raw := range items {
		var r struct {
			ID            string          `json:"id"`
			Result        json.RawMessage `json:"result"`
			SchemaVersion string
		}
		switch {
		case json.Unmarshal(raw, &r) != nil || len(raw) > MaxRecordBytes:
			out[i] = Rejected
			c.log.Error("central: dropping a malformed or oversized spooled finding record", "bytes", len(raw))
		case r.SchemaVersion != "" || r.ID == "" || len(r.Result) == 0:
			// An ASFF finding spooled in direct mode before the mode changed: only Security
			// Hub could take it, and this host may not call it. The (weekly) refresh sends
			// still-failing findings again as records.
			out[i] = Rejected
			c.log.Warn("central: dropping a finding spooled in direct mode; the next refresh sends it again", "bytes", len(raw))
		default:
			ok = append(ok, i)
		}
	}
	if len(ok) == 0 {
		return out, nil
	}
	p, err := c.identity(ctx)
	if err != nil {
		return out, err
	}
	env, _ := json.Marshal(FindingsEvent{Type: FindingsEventType, Version: FindingsEventVersion, Identity: p, Findings: []json.RawMessage{}})
	base := len(env)
	type group struct{ items []int }
	var groups []group
	var cur group
	size := base
	for _, i := range ok {
		n := len(items[i]) + 1
		if len(cur.items) > 0 && (len(cur.items) == MaxRecordsPerEvent || size+n > MaxFindingsEventBytes) {
			groups = append(groups, cur)
			cur, size = group{}, base
		}
		cur.items = append(cur.items, i)
		size += n
	}
	groups = append(groups, cur)
	now := c.cw.now().UnixMilli()
	evs := make([]indexed, len(groups))
	for k, g := range groups {
		ev := FindingsEvent{Type: FindingsEventType, Version: FindingsEventVersion, Identity: p}
		for _, i := range g.items {
			ev.Findings = append(ev.Findings, items[i])
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return out, fmt.Errorf("central: encode findings event: %w", err)
		}
		evs[k] = indexed{k, LogEvent{Timestamp: now, Message: string(b)}}
	}
	if err := c.cw.ensure(ctx); err != nil {
		return out, err
	}
	evOut := make([]Outcome, len(groups))
	err = c.cw.put(ctx, evs, evOut)
	for k, g := range groups {
		for _, i := range g.items {
			out[i] = evOut[k]
		}
	}
	return out, err
}
