// Package forwarder is the central forwarder of ec2sec's central mode (cmd/ec2sec-forwarder):
// it takes CloudWatch Logs subscription payloads of the findings log group, verifies each
// findings event against AWS's signature of the sending instance's identity, and imports the
// findings it carries into Security Hub, built by the agent's own ASFF code for the instance
// that signed them. It is the only principal that may call BatchImportFindings, so no
// instance can write, or archive, another instance's findings.
//
// What an event must be to be imported (anything else is rejected as a whole, with a log
// line and a metric, and nothing of it is imported):
//   - a findings event (sink.FindingsEvent) within its bounds;
//   - its identity document signed (PKCS#7, RSA-2048) by AWS's certificate of the document's
//     Region;
//   - the document's account allowed (the stack's account, or a list for organisations);
//   - written to the log stream named after the document's instance;
//   - every finding's id that instance's (instance-id/check/hash), and a result resource
//     that names an instance naming that instance.
package forwarder

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/securityhub/types"
	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/sink"
)

// Rejection reasons: the metric dimension and the log line's "reason".
const (
	ReasonMalformedPayload   = "malformed-payload"
	ReasonMalformedEvent     = "malformed-event"
	ReasonOversized          = "oversized"
	ReasonMissingSignature   = "missing-signature"
	ReasonMalformedSignature = "malformed-signature"
	ReasonBadSignature       = "bad-signature"
	ReasonUnknownRegion      = "unknown-region"
	ReasonMalformedDocument  = "malformed-document"
	ReasonAccount            = "account-not-allowed"
	ReasonStream             = "stream-not-the-instance"
	ReasonForeignFinding     = "finding-not-the-signer"
)

// maxDocument bounds the identity document; a real one is about 500 bytes.
const maxDocument = 4 << 10

// Identity is what the forwarder takes from a verified identity document.
type Identity struct {
	InstanceID string `json:"instanceId"`
	AccountID  string `json:"accountId"`
	Region     string `json:"region"`
}

// Verifier checks a signed identity and returns who signed it, or a reason and error.
type Verifier func(p sink.Proof) (Identity, string, error)

// PKCS7Verifier verifies the rsa2048 PKCS#7 signature with the trust's certificate of the
// document's Region.
func PKCS7Verifier(t Trust) Verifier {
	return func(p sink.Proof) (Identity, string, error) {
		if strings.TrimSpace(p.RSA2048) == "" {
			return Identity{}, ReasonMissingSignature, errors.New("the event carries no rsa2048 signature")
		}
		der, err := DecodeSignature(p.RSA2048)
		if err != nil {
			return Identity{}, ReasonMalformedSignature, err
		}
		sd, err := ParseSignedData(der)
		if err != nil {
			return Identity{}, ReasonMalformedSignature, err
		}
		doc := []byte(p.Document)
		if len(doc) == 0 && sd.Content != nil {
			doc = sd.Content // the document as signed
		}
		if len(doc) == 0 || len(doc) > maxDocument {
			return Identity{}, ReasonMalformedDocument, fmt.Errorf("identity document of %d bytes", len(doc))
		}
		var id Identity
		if err := json.Unmarshal(doc, &id); err != nil || id.InstanceID == "" || id.AccountID == "" || id.Region == "" {
			return Identity{}, ReasonMalformedDocument, fmt.Errorf("identity document lacks instanceId, accountId or region (%v)", err)
		}
		certs := t.For(id.Region)
		if len(certs) == 0 {
			return Identity{}, ReasonUnknownRegion, fmt.Errorf("no certificate for Region %q (set EC2SEC_TRUST_PEM for Regions newer than this build)", id.Region)
		}
		if err := sd.Verify(doc, certs); err != nil {
			return Identity{}, ReasonBadSignature, fmt.Errorf("region %s: %w", id.Region, err)
		}
		return id, "", nil
	}
}

// Config is the forwarder's setup.
type Config struct {
	Verify Verifier
	// Accounts whose instances may send findings; empty: only HubAccount.
	Accounts map[string]bool
	// HubAccount is the account that imports (AwsAccountId and the default product ARN),
	// the function's own; HubRegion and Partition are where its Security Hub is.
	HubAccount, HubRegion, Partition string
}

// Forwarder verifies and imports; one per process, shared by invocations.
type Forwarder struct {
	Config
	Importer *Importer
	Log      *slog.Logger
	Metrics  io.Writer // EMF documents, one line each (Lambda's stdout)
	Clock    Clock

	mu sync.Mutex // Metrics
}

// Result sums up one invocation; it is the invocation's response.
type Result struct {
	Payloads int            `json:"payloads"`
	Events   int            `json:"findings_events"`
	Findings int            `json:"findings"`
	Rejected map[string]int `json:"rejected,omitempty"` // findings events by reason
	ImportStats
}

// pending is a verified finding waiting for import.
type pending struct {
	f       types.AwsSecurityFinding
	updated string
	size    int
}

// Handle processes one invocation. It returns an error only when findings could not be
// imported (Lambda then retries the invocation, and dead-letters it in the end); rejected
// events are logged and counted, and retrying them would not help.
func (fw *Forwarder) Handle(ctx context.Context, ev []byte) (Result, error) {
	res := Result{Rejected: map[string]int{}}
	if fw.HubAccount == "" {
		// Not configured: the account the function runs in, from the invocation.
		fw.HubAccount = accountOfARN(InvokedARN(ctx))
	}
	payloads, err := DecodeEvent(ev)
	if err != nil {
		fw.reject(&res, ReasonMalformedPayload, err, "", "")
		fw.emit(res)
		return res, nil
	}
	byID := map[string]pending{}
	for _, gz := range payloads {
		res.Payloads++
		d, err := DecodePayload(gz)
		if err != nil {
			reason := ReasonMalformedPayload
			if strings.Contains(err.Error(), "more than") {
				reason = ReasonOversized
			}
			fw.reject(&res, reason, err, "", "")
			continue
		}
		if d.MessageType == "CONTROL_MESSAGE" {
			continue
		}
		for _, e := range d.LogEvents {
			fw.event(&res, d, e, byID)
		}
	}
	fs := make([]types.AwsSecurityFinding, 0, len(byID))
	sizes := make(map[string]int, len(byID))
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		fs = append(fs, byID[id].f)
		sizes[id] = byID[id].size
	}
	fw.Importer.Sizes = sizes // one invocation at a time
	res.Findings = len(fs)
	if len(fs) > 0 {
		st, err := fw.Importer.Import(ctx, fs)
		res.ImportStats = st
		fw.emit(res)
		if err != nil {
			return res, err
		}
		return res, nil
	}
	fw.emit(res)
	return res, nil
}

// event verifies one log event and adds its findings to byID (the latest version per id).
func (fw *Forwarder) event(res *Result, d *LogsData, e LogEvent, byID map[string]pending) {
	// Only findings events matter; result events and run summaries share the group.
	if !strings.Contains(e.Message, `"type":"findings"`) {
		var probe struct{ Type string }
		if json.Unmarshal([]byte(e.Message), &probe) != nil || probe.Type != sink.FindingsEventType {
			return
		}
	}
	res.Events++
	if len(e.Message) > sink.MaxFindingsEventBytes+16<<10 {
		fw.reject(res, ReasonOversized, fmt.Errorf("findings event of %d bytes", len(e.Message)), d.LogStream, e.ID)
		return
	}
	var fe struct {
		Type     string            `json:"type"`
		Version  int               `json:"v"`
		Identity *sink.Proof       `json:"identity"`
		Findings []json.RawMessage `json:"findings"`
	}
	if err := json.Unmarshal([]byte(e.Message), &fe); err != nil || fe.Type != sink.FindingsEventType {
		fw.reject(res, ReasonMalformedEvent, fmt.Errorf("not a findings event: %v", err), d.LogStream, e.ID)
		return
	}
	if fe.Version != sink.FindingsEventVersion {
		fw.reject(res, ReasonMalformedEvent, fmt.Errorf("findings event version %d, want %d", fe.Version, sink.FindingsEventVersion), d.LogStream, e.ID)
		return
	}
	if len(fe.Findings) > sink.MaxRecordsPerEvent {
		fw.reject(res, ReasonOversized, fmt.Errorf("%d findings in one event, more than %d", len(fe.Findings), sink.MaxRecordsPerEvent), d.LogStream, e.ID)
		return
	}
	if fe.Identity == nil {
		fw.reject(res, ReasonMissingSignature, errors.New("the event carries no identity"), d.LogStream, e.ID)
		return
	}
	id, reason, err := fw.Verify(*fe.Identity)
	if err != nil {
		fw.reject(res, reason, err, d.LogStream, e.ID)
		return
	}
	if !fw.accountOK(id.AccountID) {
		fw.reject(res, ReasonAccount, fmt.Errorf("account %s is not allowed", id.AccountID), d.LogStream, e.ID)
		return
	}
	// The stream is the instance's (the agent names it so): with the instance policy scoped
	// to it, a copied signature is of no use from another instance's stream.
	if d.LogStream != id.InstanceID {
		fw.reject(res, ReasonStream, fmt.Errorf("signed by %s, written to stream %q", id.InstanceID, d.LogStream), d.LogStream, e.ID)
		return
	}
	arn := fmt.Sprintf("arn:%s:ec2:%s:%s:instance/%s", fw.Partition, id.Region, id.AccountID, id.InstanceID)
	host := asff.Host{AccountID: cmp.Or(fw.HubAccount, id.AccountID), Region: cmp.Or(fw.HubRegion, id.Region), Partition: fw.Partition, InstanceARN: arn}
	var out []pending
	for i, raw := range fe.Findings {
		var rec asff.Record
		if err := json.Unmarshal(raw, &rec); err != nil || rec.ID == "" || rec.Result.Check == "" || rec.Updated.IsZero() {
			fw.reject(res, ReasonMalformedEvent, fmt.Errorf("finding %d is not a finding record: %v", i, err), d.LogStream, e.ID)
			return
		}
		// The finding must be the signer's: its id (the Security Hub Id, which an import
		// overwrites) starts with the instance id, and a result about an instance names
		// this one. One foreign finding rejects the whole event: it shows a forger.
		if !strings.HasPrefix(rec.ID, id.InstanceID+"/") {
			fw.reject(res, ReasonForeignFinding, fmt.Errorf("finding %q is not of the signing instance %s", rec.ID, id.InstanceID), d.LogStream, e.ID)
			return
		}
		if r := rec.Result.Resource; strings.Contains(r, ":instance/") && r != arn {
			fw.reject(res, ReasonForeignFinding, fmt.Errorf("finding %q is about %q, not the signing instance %s", rec.ID, r, arn), d.LogStream, e.ID)
			return
		}
		f := rec.Finding(host)
		f.Resources[0].Region = id.Region
		b, err := json.Marshal(f)
		if err != nil || len(b) > sink.MaxFindingBytes {
			fw.reject(res, ReasonOversized, fmt.Errorf("finding %q of %d bytes", rec.ID, len(b)), d.LogStream, e.ID)
			return
		}
		var sf types.AwsSecurityFinding
		if err := json.Unmarshal(b, &sf); err != nil {
			fw.reject(res, ReasonMalformedEvent, fmt.Errorf("finding %q: %v", rec.ID, err), d.LogStream, e.ID)
			return
		}
		out = append(out, pending{sf, f.UpdatedAt, len(b)})
	}
	for _, p := range out {
		id := *p.f.Id
		if old, ok := byID[id]; !ok || p.updated > old.updated { // the same stamp format: text order is time order
			byID[id] = p
		}
	}
}

func (fw *Forwarder) accountOK(a string) bool {
	if len(fw.Accounts) > 0 {
		return fw.Accounts[a]
	}
	return a != "" && a == fw.HubAccount
}

func (fw *Forwarder) reject(res *Result, reason string, err error, stream, eventID string) {
	res.Rejected[reason]++
	fw.Log.Warn("rejected a findings event; nothing of it is imported", "reason", reason, "detail", err.Error(), "log_stream", stream, "event_id", eventID)
}

// emit writes the invocation's metrics in Embedded Metric Format: fleet-level only (no
// instance dimension), rejections also by reason.
func (fw *Forwarder) emit(res Result) {
	if fw.Metrics == nil {
		return
	}
	now := fw.clock().Now().UnixMilli()
	doc := func(dims [][]string, vals map[string]any, names ...string) {
		var ms []map[string]string
		for _, n := range names {
			ms = append(ms, map[string]string{"Name": n, "Unit": "Count"})
		}
		vals["_aws"] = map[string]any{"Timestamp": now, "CloudWatchMetrics": []any{map[string]any{
			"Namespace": "ec2sec/forwarder", "Dimensions": dims, "Metrics": ms,
		}}}
		b, _ := json.Marshal(vals)
		fw.mu.Lock()
		fw.Metrics.Write(append(b, '\n'))
		fw.mu.Unlock()
	}
	rejected := 0
	for _, n := range res.Rejected {
		rejected += n
	}
	doc([][]string{{}}, map[string]any{
		"FindingsEvents": res.Events, "FindingsImported": res.Imported, "FindingsRefused": res.Refused,
		"FindingsFailed": res.Failed, "EventsRejected": rejected, "ImportCalls": res.Calls, "ImportThrottled": res.Throttled,
	}, "FindingsEvents", "FindingsImported", "FindingsRefused", "FindingsFailed", "EventsRejected", "ImportCalls", "ImportThrottled")
	for _, reason := range slices.Sorted(maps.Keys(res.Rejected)) {
		doc([][]string{{"Reason"}}, map[string]any{"Reason": reason, "EventsRejected": res.Rejected[reason]}, "EventsRejected")
	}
}

func (fw *Forwarder) clock() Clock {
	if fw.Clock == nil {
		return RealClock
	}
	return fw.Clock
}
