package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func setup(t *testing.T) (*awsfake.Server, context.Context) {
	f := awsfake.New(t)
	for k, v := range f.Env() {
		t.Setenv(k, v)
	}
	return f, context.Background()
}

func fast() AWSOptions {
	return AWSOptions{MaxAttempts: 4, MaxBackoff: 20 * time.Millisecond, HTTPTimeout: 5 * time.Second}
}

func events(t *testing.T, n int, start time.Time, step time.Duration, size int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		msg := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", size))
		b, _ := json.Marshal(LogEvent{Timestamp: start.Add(time.Duration(i) * step).UnixMilli(), Message: msg})
		out[i] = b
	}
	return out
}

func count(os []Outcome, want Outcome) int {
	n := 0
	for _, o := range os {
		if o == want {
			n++
		}
	}
	return n
}

// TestCloudWatchBatching sends more events, bytes and hours than one PutLogEvents allows;
// the strict fake fails any call over a limit.
func TestCloudWatchBatching(t *testing.T) {
	f, ctx := setup(t)
	cfg, err := LoadAWS(ctx, fast())
	if err != nil {
		t.Fatal(err)
	}
	cw := NewCloudWatch(cfg, "/ec2sec/findings", "i-1", slog.New(slog.DiscardHandler))
	now := time.Now()
	var items []json.RawMessage
	items = append(items, events(t, 25_000, now.Add(-13*24*time.Hour), time.Millisecond, 10)...) // > 10,000 events
	items = append(items, events(t, 12, now.Add(-12*24*time.Hour), time.Second, 200_000)...)     // > 1 MiB
	items = append(items, events(t, 40, now.Add(-10*24*time.Hour), 3*time.Hour, 10)...)          // > 24 h span
	out, err := cw.Send(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(out, Accepted); n != len(items) {
		t.Fatalf("%d of %d accepted", n, len(items))
	}
	if v := f.Violations(); len(v) > 0 {
		t.Fatalf("limits violated: %v", v)
	}
	if got := len(f.Events("/ec2sec/findings", "i-1")); got != len(items) {
		t.Errorf("stored %d events, want %d", got, len(items))
	}
	if c := f.Calls(awsfake.OpPutLogEvents); c < 3+5 {
		t.Errorf("only %d PutLogEvents calls for 25,000 events, 2.4 MB and 120 h", c)
	}
	// The group and stream exist now; a second sink creates nothing and still works.
	cw2 := NewCloudWatch(cfg, "/ec2sec/findings", "i-1", slog.New(slog.DiscardHandler))
	if out, err := cw2.Send(ctx, events(t, 1, now, 0, 1)); err != nil || out[0] != Accepted {
		t.Fatalf("second sink: %v %v", out, err)
	}
}

// TestCloudWatchRejected: events CloudWatch refuses (RejectedLogEventsInfo) are rejected, not
// retried forever; events we know are too old are never sent.
func TestCloudWatchRejected(t *testing.T) {
	f, ctx := setup(t)
	f.Now = func() time.Time { return time.Now().Add(-3 * time.Hour) } // the service's clock is behind: our events are "too new"
	cfg, _ := LoadAWS(ctx, fast())
	cw := NewCloudWatch(cfg, "g", "s", slog.New(slog.DiscardHandler))
	items := events(t, 5, time.Now(), time.Millisecond, 5)
	items = append(events(t, 2, time.Now().Add(-20*24*time.Hour), 0, 5), items...)
	out, err := cw.Send(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if count(out, Rejected) != 7 {
		t.Fatalf("outcomes %v, want all rejected", out)
	}
	if len(f.Events("g", "s")) != 0 {
		t.Error("fake stored rejected events")
	}
}

// TestCloudWatchFaults: throttling, 5xx and a reset connection are retried by the SDK within
// the attempt; a call that keeps failing leaves its items for the delivery loop.
func TestCloudWatchFaults(t *testing.T) {
	f, ctx := setup(t)
	cfg, _ := LoadAWS(ctx, fast())
	cw := NewCloudWatch(cfg, "g", "s", slog.New(slog.DiscardHandler))
	f.Inject(awsfake.OpPutLogEvents, awsfake.Throttle, awsfake.ServerError, awsfake.Reset)
	out, err := cw.Send(ctx, events(t, 3, time.Now(), time.Millisecond, 5))
	if err != nil || count(out, Accepted) != 3 {
		t.Fatalf("after transient faults: %v %v", out, err)
	}
	f.Inject(awsfake.OpPutLogEvents, awsfake.ServerError, awsfake.ServerError, awsfake.ServerError, awsfake.ServerError)
	out, err = cw.Send(ctx, events(t, 3, time.Now(), time.Millisecond, 5))
	if err == nil || count(out, Retry) != 3 {
		t.Fatalf("persistent 5xx: %v %v, want all Retry and an error", out, err)
	}
	if len(f.Events("g", "s")) != 3 {
		t.Errorf("stored %d events", len(f.Events("g", "s")))
	}
}

func findings(n int, prefix string) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		out[i] = json.RawMessage(fmt.Sprintf(`{"SchemaVersion":"2018-10-08","Id":%q,"ProductArn":"arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default","GeneratorId":"ec2sec/x","AwsAccountId":"123456789012","Types":["Software and Configuration Checks/AWS Security Best Practices"],"CreatedAt":"2026-01-01T00:00:00Z","UpdatedAt":"2026-01-01T00:00:00Z","Severity":{"Label":"HIGH"},"Title":"t","Description":"d","Resources":[{"Type":"AwsEc2Instance","Id":"arn:aws:ec2:us-east-1:123456789012:instance/i-1","Partition":"aws","Region":"us-east-1"}],"RecordState":"ACTIVE"}`, id))
	}
	return out
}

// TestSecurityHubBatchesAndFaults: at most 100 per call, transient faults retried,
// FailedFindings split into retry (retryable code) and rejected (not).
func TestSecurityHubBatchesAndFaults(t *testing.T) {
	f, ctx := setup(t)
	cfg, _ := LoadAWS(ctx, fast())
	sh := NewSecurityHub(cfg, slog.New(slog.DiscardHandler))
	sh.interval = time.Millisecond
	f.Inject(awsfake.OpBatchImportFindings, awsfake.Throttle, awsfake.Reset, 0, awsfake.ServerError)
	items := findings(250, "f")
	out, err := sh.Send(ctx, items)
	if err != nil || count(out, Accepted) != 250 {
		t.Fatalf("250 findings: %d accepted, err %v", count(out, Accepted), err)
	}
	if v := f.Violations(); len(v) > 0 {
		t.Fatalf("violations: %v", v)
	}
	if c := f.Calls(awsfake.OpBatchImportFindings); c != 3+3 {
		t.Errorf("%d calls, want 3 batches + 3 retries", c)
	}
	f.Inject(awsfake.OpBatchImportFindings, awsfake.PartialFail)
	out, err = sh.Send(ctx, findings(5, "p"))
	if err == nil || out[0] != Retry || out[1] != Rejected || count(out, Accepted) != 3 {
		t.Fatalf("partial failure: %v %v", out, err)
	}
	awsfake.ValidateBatchImportFindings(t, f.Bodies())
}

// TestSecurityHubBurst: 40 calls at once exceed the fake's 10 TPS burst 30 bucket; the
// pacing keeps us under it, and what throttling remains is retried.
func TestSecurityHubBurst(t *testing.T) {
	f, ctx := setup(t)
	cfg, _ := LoadAWS(ctx, AWSOptions{MaxAttempts: 6, MaxBackoff: 500 * time.Millisecond})
	sh := NewSecurityHub(cfg, slog.New(slog.DiscardHandler))
	sh.interval = 20 * time.Millisecond // faster than 10 TPS: the fake must throttle some
	out, err := sh.Send(ctx, findings(4000, "b"))
	if err != nil || count(out, Accepted) != 4000 {
		t.Fatalf("burst: %d accepted, err %v", count(out, Accepted), err)
	}
	awsfake.ValidateBatchImportFindings(t, f.Bodies())
}

// TestAssumeRole: with role_arn the CloudWatch calls are signed with the role's
// credentials, fetched once and cached across calls.
func TestAssumeRole(t *testing.T) {
	f, ctx := setup(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDINSTANCEKEY00001")
	cfg, _ := LoadAWS(ctx, fast())
	role := AssumeRole(cfg, "arn:aws:iam::111122223333:role/central", "ec2sec-i-1")
	cw := NewCloudWatch(role, "g", "s", slog.New(slog.DiscardHandler))
	for i := range 3 {
		if _, err := cw.Send(ctx, events(t, 1, time.Now().Add(time.Duration(i)*time.Millisecond), 0, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.Calls(awsfake.OpAssumeRole); n != 1 {
		t.Errorf("AssumeRole called %d times, want 1 (cached)", n)
	}
	if ids := f.KeyIDs(awsfake.OpAssumeRole); len(ids) != 1 || ids[0] != "AKIDINSTANCEKEY00001" {
		t.Errorf("AssumeRole signed by %v, want the instance's key", ids)
	}
	for _, id := range f.KeyIDs(awsfake.OpPutLogEvents) {
		if id != f.RoleKeyID {
			t.Errorf("PutLogEvents signed by %s, want the role's %s", id, f.RoleKeyID)
		}
	}
	// Expired role credentials are fetched again.
	f2, _ := setup(t)
	f2.RoleTTL = time.Second // inside the expiry window: every use refreshes
	cfg2, _ := LoadAWS(ctx, fast())
	cw2 := NewCloudWatch(AssumeRole(cfg2, "arn:aws:iam::111122223333:role/central", "s"), "g", "s", slog.New(slog.DiscardHandler))
	for range 2 {
		if _, err := cw2.Send(ctx, events(t, 1, time.Now(), 0, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if n := f2.Calls(awsfake.OpAssumeRole); n < 2 {
		t.Errorf("short-lived role credentials fetched %d times, want a refresh", n)
	}
}

// TestCloudWatchCreateDenied: a role that may write but not create still writes to a group
// and stream an administrator made; one that can create neither fails the attempt.
func TestCloudWatchCreateDenied(t *testing.T) {
	f, ctx := setup(t)
	cfg, _ := LoadAWS(ctx, fast())
	if _, err := NewCloudWatch(cfg, "g", "s", slog.New(slog.DiscardHandler)).Send(ctx, events(t, 1, time.Now(), 0, 1)); err != nil {
		t.Fatal(err) // the administrator's setup
	}
	f.Inject(awsfake.OpCreateLogStream, awsfake.Denied)
	out, err := NewCloudWatch(cfg, "g", "s", slog.New(slog.DiscardHandler)).Send(ctx, events(t, 1, time.Now(), 0, 1))
	if err != nil || out[0] != Accepted {
		t.Fatalf("create denied, stream exists: %v %v", out, err)
	}
	f.Inject(awsfake.OpCreateLogGroup, awsfake.Denied)
	out, err = NewCloudWatch(cfg, "nogroup", "s", slog.New(slog.DiscardHandler)).Send(ctx, events(t, 1, time.Now(), 0, 1))
	if err == nil || out[0] != Retry {
		t.Fatalf("no group and create denied: %v %v, want Retry and an error", out, err)
	}
}

// TestCloudWatchCreateDuringOutage: a stream that could not be created because the endpoint
// was down (connection resets) or throttling is created on the first send after the outage,
// not taken for a refused create and written to blindly (which failed the first flush after
// every outage with ResourceNotFoundException).
func TestCloudWatchCreateDuringOutage(t *testing.T) {
	for _, fault := range []awsfake.Fault{awsfake.Reset, awsfake.Throttle, awsfake.ServerError} {
		f, ctx := setup(t)
		cfg, _ := LoadAWS(ctx, fast())
		cw := NewCloudWatch(cfg, "g", "s", slog.New(slog.DiscardHandler))
		f.Outage(fault)
		if out, err := cw.Send(ctx, events(t, 1, time.Now(), 0, 1)); err == nil || out[0] != Retry {
			t.Fatalf("fault %d: send during the outage: %v %v", fault, out, err)
		}
		f.Outage(0)
		if out, err := cw.Send(ctx, events(t, 1, time.Now(), 0, 1)); err != nil || out[0] != Accepted {
			t.Errorf("fault %d: first send after the outage: %v %v", fault, out, err)
		}
	}
}
