package agent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// Central mode: findings leave the instance only as CloudWatch Logs findings events on its
// own stream, each with the signed identity from IMDS and the lifecycle's records (a fix
// comes as an archived record); Security Hub is never called. The records carry no secret.
func TestReporterCentralMode(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	imds := fakeIMDS(t, "i-0ccccccccccccccc3")
	cfg := testConfig(t)
	cfg.SecurityHub.Mode = HubCentral
	rep, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS(), IMDS: metadata.New(metadata.Options{Endpoint: imds.URL})})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := testIdentity("i-0ccccccccccccccc3")
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	v1 := probes.NewResult("imds-v1-enabled", probes.Failed, "", "IMDSv1 answered")
	sec := probes.NewResult("secret-in-local-file", probes.Failed, "/etc/app.conf", "a secret").With("fingerprint", "fp1").With("redacted", "AKIA****")
	sec.Probe = "credentials"
	for i, rs := range [][]probes.Result{{v1, sec}, {sec}} {
		st, err := rep.Spool(ctx, synthetic(id, t0.Add(time.Duration(i)*time.Hour), []string{"imds", "credentials"}, rs...))
		if err != nil {
			t.Fatal(err)
		}
		if fs, err := rep.Flush(ctx); err != nil || fs.Pending["security_hub"] > 0 {
			t.Fatalf("flush: %+v %v", fs, err)
		}
		if i == 0 && st.Findings != 2 {
			t.Fatalf("first scan: %+v", st)
		}
	}
	if n := f.Calls(awsfake.OpBatchImportFindings); n != 0 {
		t.Errorf("central mode called BatchImportFindings %d times", n)
	}
	var events []sink.FindingsEvent
	for _, e := range f.Events("/ec2sec/findings", "i-0ccccccccccccccc3") {
		assertNoLeak(t, "log event", []byte(e.Message))
		if !strings.Contains(e.Message, `"type":"findings"`) {
			continue
		}
		var fe sink.FindingsEvent
		if err := json.Unmarshal([]byte(e.Message), &fe); err != nil {
			t.Fatal(err)
		}
		events = append(events, fe)
	}
	if len(events) != 2 {
		t.Fatalf("%d findings events, want one per flush", len(events))
	}
	for _, fe := range events {
		if fe.Version != 1 || !strings.Contains(fe.Identity.Document, `"instanceId":"i-0ccccccccccccccc3"`) || fe.Identity.RSA2048 != fakeRSA2048 {
			t.Errorf("identity %+v", fe.Identity)
		}
	}
	var recs []asff.Record
	for _, fe := range events {
		for _, raw := range fe.Findings {
			var r asff.Record
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
	}
	if len(recs) != 3 || recs[2].Result.Check != "imds-v1-enabled" || !recs[2].Archived || recs[2].Lifecycle != "resolved" || recs[2].Result.Status != probes.Passed {
		t.Fatalf("records %+v", recs)
	}
	// The record builds the finding direct mode would have sent.
	host := hubHostOf(id)
	want := asff.FromResult(recs[0].Result, host, recs[0].Times(), asff.Options{AgentVersion: Version()})
	if got := recs[0].Finding(host); got.ID != want.ID || !strings.HasPrefix(got.ID, "i-0ccccccccccccccc3/") || got.Resources[0].ID != id.InstanceARN() {
		t.Errorf("record's finding %+v", got)
	}
}
