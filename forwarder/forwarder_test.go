package forwarder

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/internal/testca"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	acct   = "123456789012"
	instA  = "i-0aaaaaaaaaaaaaaa1"
	instB  = "i-0bbbbbbbbbbbbbbb2"
	region = "us-east-1"
)

// rig is a forwarder as FromEnv builds it, trusting a test CA for us-east-1, importing into
// the strict fake Security Hub.
type rig struct {
	ca      *testca.CA
	fake    *awsfake.Server
	fw      *Forwarder
	logs    *bytes.Buffer
	metrics *bytes.Buffer
}

func newRig(t *testing.T, env ...string) *rig {
	t.Helper()
	r := &rig{ca: testca.New(t, "aws us-east-1"), fake: awsfake.New(t), logs: &bytes.Buffer{}, metrics: &bytes.Buffer{}}
	for k, v := range r.fake.Env() {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_REGION", region)
	t.Setenv("EC2SEC_TRUST_PEM", r.ca.PEM(region))
	t.Setenv("EC2SEC_HUB_ACCOUNT", acct)
	for i := 0; i+1 < len(env); i += 2 {
		t.Setenv(env[i], env[i+1])
	}
	fw, err := FromEnv(context.Background(), os.Getenv, r.metrics, slog.New(slog.NewJSONHandler(r.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	fw.Importer.BaseBackoff = 5 * time.Millisecond
	r.fw = fw
	return r
}

// record is a finding record as the agent's Reporter makes it.
func record(inst, check string, status probes.Status, at time.Time) asff.Record {
	res := probes.NewResult(check, status, "/etc/app/conf", "reason of "+check).With("path", "/etc/app/conf")
	res.Probe, res.Title, res.Severity = "imds", "title of "+check, probes.High
	res.Compliance = []string{"CIS AWS Foundations 5.6"}
	id := inst + "/" + check + "/0123456789abcdef"
	res.ID = id
	return asff.Record{ID: id, Lifecycle: "new", Result: res, FirstObserved: at, LastObserved: at, Created: at, Updated: at, AgentVersion: "test"}
}

// findingsEvent is the log event the agent's central sink writes.
func findingsEvent(t *testing.T, p sink.Proof, recs ...asff.Record) LogEvent {
	t.Helper()
	ev := sink.FindingsEvent{Type: sink.FindingsEventType, Version: sink.FindingsEventVersion, Identity: p}
	for _, r := range recs {
		b, _ := json.Marshal(r)
		ev.Findings = append(ev.Findings, b)
	}
	b, _ := json.Marshal(ev)
	return LogEvent{ID: fmt.Sprint(time.Now().UnixNano()), Timestamp: time.Now().UnixMilli(), Message: string(b)}
}

func (r *rig) proof(t *testing.T, inst string) sink.Proof {
	doc := testca.Document(inst, acct, region)
	return sink.Proof{Document: doc, RSA2048: r.ca.Sign(t, doc, testca.Options{})}
}

func payload(stream string, evs ...LogEvent) *LogsData {
	return &LogsData{MessageType: "DATA_MESSAGE", Owner: acct, LogGroup: "/ec2sec/findings", LogStream: stream, SubscriptionFilters: []string{"ec2sec-forwarder"}, LogEvents: evs}
}

// A subscription payload (base64 + gzip JSON, as CloudWatch Logs sends it) of a signed
// findings event is imported: the findings as the agent's asff code builds them for the
// signing instance, every call valid to botocore; result events and run summaries in the
// same payload are passed over.
func TestHandleSubscription(t *testing.T) {
	r := newRig(t)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	fixed := record(instA, "imds-v1-enabled", probes.Passed, at)
	fixed.Archived, fixed.Lifecycle, fixed.ArchiveReason = true, "resolved", "No longer found."
	host := record(instA, "imds-no-instance-profile", probes.Failed, at)
	host.Result.Resource = "arn:aws:ec2:us-east-1:" + acct + ":instance/" + instA
	d := payload(instA,
		LogEvent{ID: "1", Timestamp: at.UnixMilli(), Message: `{"type":"result","lifecycle":"new","result":{"id":"x"}}`},
		findingsEvent(t, r.proof(t, instA), record(instA, "ssh-password-auth", probes.Failed, at), fixed, host),
		LogEvent{ID: "3", Timestamp: at.UnixMilli(), Message: `{"type":"run-summary","_aws":{}}`},
	)
	res, err := r.fw.Handle(context.Background(), SubscriptionEvent(d))
	if err != nil || len(res.Rejected) > 0 || res.Imported != 3 || res.Events != 1 {
		t.Fatalf("result %+v, err %v\n%s", res, err, r.logs)
	}
	got := r.fake.Findings()
	want := host.Finding(asff.Host{AccountID: acct, Region: region, Partition: "aws", InstanceARN: host.Result.Resource})
	var f map[string]any
	json.Unmarshal(got[host.ID], &f)
	res0 := f["Resources"].([]any)[0].(map[string]any)
	if f["ProductArn"] != asff.ProductARN("aws", region, acct) || res0["Id"] != want.Resources[0].ID || res0["Type"] != "AwsEc2Instance" || f["Title"] != want.Title {
		t.Errorf("imported %s", got[host.ID])
	}
	var a struct{ RecordState, UpdatedAt string }
	json.Unmarshal(got[fixed.ID], &a)
	if a.RecordState != "ARCHIVED" {
		t.Errorf("archived record imported as %s", got[fixed.ID])
	}
	awsfake.ValidateBatchImportFindings(t, r.fake.Bodies())
	if !strings.Contains(r.metrics.String(), `"FindingsImported":3`) || strings.Contains(r.metrics.String(), instA) {
		t.Errorf("metrics (fleet-level, no instance): %s", r.metrics)
	}
}

// A Kinesis batch carries the payloads of many instances: their findings share calls (100 a
// call), which is what lets a large fleet's findings through Security Hub's 10 calls a
// second. Of two versions of one finding the later is imported, never both in one call.
func TestHandleKinesisBatchesAcrossInstances(t *testing.T) {
	r := newRig(t)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var ds []*LogsData
	for i := range 30 {
		inst := fmt.Sprintf("i-0%016x", i)
		recs := []asff.Record{record(inst, "ssh-password-auth", probes.Failed, at), record(inst, "public-ipv4", probes.Failed, at)}
		ds = append(ds, payload(inst, findingsEvent(t, r.proof(t, inst), recs...)))
	}
	older := record(instA, "ssh-root-login", probes.Failed, at)
	newer := record(instA, "ssh-root-login", probes.Passed, at.Add(time.Hour))
	newer.Archived = true
	ds = append(ds, payload(instA, findingsEvent(t, r.proof(t, instA), newer)), payload(instA, findingsEvent(t, r.proof(t, instA), older)))
	res, err := r.fw.Handle(context.Background(), KinesisEvent(ds...))
	if err != nil || res.Imported != 61 || res.Calls != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	var v struct{ RecordState string }
	json.Unmarshal(r.fake.Findings()[older.ID], &v)
	if v.RecordState != "ARCHIVED" {
		t.Errorf("the older version won: %s", r.fake.Findings()[older.ID])
	}
	awsfake.ValidateBatchImportFindings(t, r.fake.Bodies())
}

// Forgeries and garbage: each rejected with its reason and a log line, nothing imported,
// nothing crashes, and the invocation succeeds (retrying would not help).
func TestForgeriesRejected(t *testing.T) {
	r := newRig(t)
	at := time.Now().UTC().Truncate(time.Millisecond)
	other := testca.New(t, "aws eu-west-1")
	attacker := testca.New(t, "attacker")
	docA := testca.Document(instA, acct, region)
	sigA := r.ca.Sign(t, docA, testca.Options{})
	recA := record(instA, "ssh-password-auth", probes.Failed, at)
	recB := record(instB, "ssh-password-auth", probes.Passed, at)
	recB.Archived = true // the classic attack: archive a neighbour's finding
	bomb := func() []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"`))
		zw.Write(bytes.Repeat([]byte("A"), MaxPayloadBytes+10))
		zw.Close()
		b, _ := json.Marshal(map[string]any{"awslogs": map[string][]byte{"data": buf.Bytes()}})
		return b
	}
	many := make([]asff.Record, sink.MaxRecordsPerEvent+1)
	for i := range many {
		many[i] = record(instA, fmt.Sprintf("check-%d", i), probes.Failed, at)
	}
	huge := recA
	huge.Result.Reason = strings.Repeat("x", sink.MaxFindingsEventBytes+32<<10)
	otherRegionDoc := testca.Document(instA, acct, "eu-west-1")
	cases := []struct {
		name, reason string
		ev           []byte
	}{
		{"signed for A, carrying B's finding", ReasonForeignFinding,
			SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: docA, RSA2048: sigA}, recA, recB)))},
		{"signed for A, about B's instance ARN", ReasonForeignFinding, func() []byte {
			x := recA
			x.Result.Resource = "arn:aws:ec2:us-east-1:" + acct + ":instance/" + instB
			return SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: docA, RSA2048: sigA}, x)))
		}()},
		{"A's signature on B's stream", ReasonStream,
			SubscriptionEvent(payload(instB, findingsEvent(t, sink.Proof{Document: docA, RSA2048: sigA}, recA)))},
		{"tampered document", ReasonBadSignature,
			SubscriptionEvent(payload(instB, findingsEvent(t, sink.Proof{Document: strings.Replace(docA, instA, instB, 1), RSA2048: sigA}, recB)))},
		{"detached signature, document swapped", ReasonBadSignature, func() []byte {
			sig := r.ca.Sign(t, docA, testca.Options{Detached: true})
			docB := testca.Document(instB, acct, region)
			return SubscriptionEvent(payload(instB, findingsEvent(t, sink.Proof{Document: docB, RSA2048: sig}, recB)))
		}()},
		{"certificate of another region", ReasonBadSignature,
			SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: docA, RSA2048: other.Sign(t, docA, testca.Options{})}, recA)))},
		{"region without a certificate", ReasonUnknownRegion,
			SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: otherRegionDoc, RSA2048: r.ca.Sign(t, otherRegionDoc, testca.Options{})}, recA)))},
		{"attacker's key, its certificate embedded", ReasonBadSignature,
			SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: docA, RSA2048: attacker.Sign(t, docA, testca.Options{EmbedCert: true})}, recA)))},
		{"missing signature", ReasonMissingSignature,
			SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: docA}, recA)))},
		{"no identity at all", ReasonMissingSignature,
			SubscriptionEvent(payload(instA, LogEvent{ID: "1", Message: `{"type":"findings","v":1,"findings":[]}`}))},
		{"malformed PKCS#7", ReasonMalformedSignature,
			SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: docA, RSA2048: "MIIBAAYJKoZIhvcNAQcCoIA="}, recA)))},
		{"PKCS#7 not base64", ReasonMalformedSignature,
			SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: docA, RSA2048: "not base64 !"}, recA)))},
		{"account not allowed", ReasonAccount, func() []byte {
			doc := testca.Document(instA, "999999999999", region)
			return SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: doc, RSA2048: r.ca.Sign(t, doc, testca.Options{})}, recA)))
		}()},
		{"too many findings in one event", ReasonOversized,
			SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: docA, RSA2048: sigA}, many...)))},
		{"event larger than the bound", ReasonOversized,
			SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: docA, RSA2048: sigA}, huge)))},
		{"gzip bomb", ReasonOversized, bomb()},
		{"payload not gzip", ReasonMalformedPayload, []byte(`{"awslogs":{"data":"aGVsbG8="}}`)},
		{"invocation not JSON", ReasonMalformedPayload, []byte(`{{{`)},
		{"finding not a record", ReasonMalformedEvent,
			func() []byte {
				id, _ := json.Marshal(sink.Proof{Document: docA, RSA2048: sigA})
				return SubscriptionEvent(payload(instA, LogEvent{ID: "1", Message: `{"type":"findings","v":1,"identity":` + string(id) + `,"findings":[1]}`}))
			}()},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			r.logs.Reset()
			res, err := r.fw.Handle(context.Background(), c.ev)
			if err != nil {
				t.Fatalf("invocation failed: %v", err)
			}
			if res.Rejected[c.reason] != 1 || res.Imported != 0 {
				t.Errorf("result %+v, want one %s rejection and nothing imported", res, c.reason)
			}
			if !strings.Contains(r.logs.String(), `"reason":"`+c.reason+`"`) {
				t.Errorf("no log line with the reason: %s", r.logs)
			}
		})
	}
	if n := r.fake.Calls(awsfake.OpBatchImportFindings); n != 0 {
		t.Errorf("%d imports for forged events", n)
	}
	if !strings.Contains(r.metrics.String(), `"Reason":"`+ReasonForeignFinding+`"`) {
		t.Errorf("no rejection metric by reason: %s", r.metrics)
	}
}

// The allowed list (organisations) replaces the hub account.
func TestAllowedAccounts(t *testing.T) {
	r := newRig(t, "EC2SEC_ALLOWED_ACCOUNTS", "111111111111, 222222222222")
	at := time.Now().UTC()
	for _, a := range []struct {
		acct string
		ok   bool
	}{{"222222222222", true}, {acct, false}} {
		doc := testca.Document(instA, a.acct, region)
		ev := SubscriptionEvent(payload(instA, findingsEvent(t, sink.Proof{Document: doc, RSA2048: r.ca.Sign(t, doc, testca.Options{})}, record(instA, "public-ipv4", probes.Failed, at))))
		res, err := r.fw.Handle(context.Background(), ev)
		if err != nil || (res.Imported == 1) != a.ok {
			t.Errorf("account %s: %+v %v", a.acct, res, err)
		}
	}
}

// Throttling and partial failures: the throttled call and the findings that failed with a
// retryable code are imported again (each retry through the limiter); the invalid one is
// refused for good and logged; no call holds an Id twice.
func TestImportRetries(t *testing.T) {
	r := newRig(t)
	at := time.Now().UTC().Truncate(time.Millisecond)
	var recs []asff.Record
	for i := range 150 {
		recs = append(recs, record(instA, fmt.Sprintf("check-%03d", i), probes.Failed, at))
	}
	r.fake.Inject(awsfake.OpBatchImportFindings, awsfake.Throttle, awsfake.PartialFail, awsfake.ServerError)
	res, err := r.fw.Handle(context.Background(), SubscriptionEvent(payload(instA, findingsEvent(t, r.proof(t, instA), recs...))))
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 149 || res.Refused != 1 || res.Throttled != 1 || res.Retried == 0 {
		t.Errorf("%+v", res)
	}
	if len(r.fake.Findings()) != 149 {
		t.Errorf("%d findings in Security Hub", len(r.fake.Findings()))
	}
	for _, b := range r.fake.Bodies() {
		var in struct{ Findings []struct{ Id string } }
		json.Unmarshal(b, &in)
		seen := map[string]bool{}
		for _, f := range in.Findings {
			if seen[f.Id] {
				t.Errorf("a call holds %s twice", f.Id)
			}
			seen[f.Id] = true
		}
	}
	if v := r.fake.Violations(); len(v) > 0 {
		t.Error(v)
	}
}

// When Security Hub keeps failing, the invocation fails (Lambda retries it, then
// dead-letters it) after a bounded number of rounds.
func TestImportGivesUp(t *testing.T) {
	r := newRig(t)
	r.fake.Outage(awsfake.ServerError)
	res, err := r.fw.Handle(context.Background(), SubscriptionEvent(payload(instA, findingsEvent(t, r.proof(t, instA), record(instA, "public-ipv4", probes.Failed, time.Now())))))
	if err == nil || res.Failed != 1 || res.Calls != 6 {
		t.Errorf("%+v %v", res, err)
	}
}

// Bounded concurrency within Security Hub's limit: 40 calls' worth of findings, none
// throttled by the strict fake (10 a second, burst 30), at the limiter's pace.
func TestImportWithinRateLimit(t *testing.T) {
	r := newRig(t, "EC2SEC_IMPORT_CONCURRENCY", "4")
	at := time.Now().UTC().Truncate(time.Millisecond)
	var ds []*LogsData
	for i := range 40 {
		inst := fmt.Sprintf("i-0%016x", i)
		var recs []asff.Record
		for j := range 100 {
			recs = append(recs, record(inst, fmt.Sprintf("check-%03d", j), probes.Failed, at))
		}
		ds = append(ds, payload(inst, findingsEvent(t, r.proof(t, inst), recs...)))
	}
	start := time.Now()
	res, err := r.fw.Handle(context.Background(), KinesisEvent(ds...))
	if err != nil || res.Imported != 4000 || res.Calls != 40 {
		t.Fatalf("%+v %v", res, err)
	}
	if th := r.fake.Throttled(awsfake.OpBatchImportFindings); th != 0 {
		t.Errorf("%d calls throttled", th)
	}
	// 20 at once, then 8 a second: at least (40-20)/8 s.
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("40 calls in %s: faster than the limiter allows", d)
	}
}
