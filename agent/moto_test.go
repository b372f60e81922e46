package agent

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"

	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// TestMotoEndToEnd: `scan --report` against moto_server (CloudWatch Logs and Security Hub),
// reached through AWS_ENDPOINT_URL_*; then the instance profile is attached, and the next
// report archives the finding as PASSED.
func TestMotoEndToEnd(t *testing.T) {
	testenv.System(t)
	url := testenv.StartMoto(t)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", url)
	t.Setenv("AWS_ENDPOINT_URL_SECURITYHUB", url)
	t.Setenv("AWS_ENDPOINT_URL_STS", url)
	t.Setenv("AWS_SECRET_ACCESS_KEY", plantedSigningKey)
	imds := fakeIMDS(t, "i-0fffffffffffffff6")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	writeCfg(t, cfgPath, "state_dir: "+filepath.Join(dir, "state")+"\n")
	scan := func() {
		t.Helper()
		var out, errb bytes.Buffer
		c := ScanCommand{Stdout: &out, Stderr: &errb, ConfigPath: cfgPath, Root: t.TempDir(), Proc: t.TempDir(), ProcSet: true, Format: "json", Report: true,
			ScanOptions: ScanOptions{IMDS: metadata.New(metadata.Options{Endpoint: imds.URL})},
			Reporter:    ReporterOptions{AWS: fastAWS()}}
		if code := c.Run(context.Background()); code != ExitOK || errb.Len() > 0 {
			t.Fatalf("scan --report: exit %d: %s", code, errb.String())
		}
		assertNoLeak(t, "scan output", out.Bytes())
	}
	scan()

	ctx := context.Background()
	cfg, err := sink.LoadAWS(ctx, sink.AWSOptions{Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	findings := func() map[string]map[string]string {
		out, err := securityhub.NewFromConfig(cfg).GetFindings(ctx, &securityhub.GetFindingsInput{})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]map[string]string{}
		for _, f := range out.Findings {
			m[aws.ToString(f.Id)] = map[string]string{
				"record": string(f.RecordState), "compliance": string(f.Compliance.Status),
				"generator": aws.ToString(f.GeneratorId), "product": aws.ToString(f.ProductArn),
				"resource": aws.ToString(f.Resources[0].Id),
			}
		}
		return m
	}
	fs := findings()
	var profileID string
	for id, f := range fs {
		if f["generator"] == "ec2sec/imds-no-instance-profile" {
			profileID = id
		}
		if f["product"] != "arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default" || f["resource"] != "arn:aws:ec2:us-east-1:123456789012:instance/i-0fffffffffffffff6" {
			t.Errorf("finding %s: %v", id, f)
		}
	}
	if profileID == "" || fs[profileID]["record"] != "ACTIVE" || fs[profileID]["compliance"] != "FAILED" {
		t.Fatalf("no active imds-no-instance-profile finding in moto: %v", fs)
	}
	logs := cloudwatchlogs.NewFromConfig(cfg)
	ev, err := logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/ec2sec/findings"), LogStreamName: aws.String("i-0fffffffffffffff6"), StartFromHead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	n := len(ev.Events)
	if n < 2 || !strings.Contains(aws.ToString(ev.Events[n-1].Message), `"run-summary"`) {
		t.Fatalf("%d events in moto, last not the run summary", n)
	}
	for _, e := range ev.Events {
		assertNoLeak(t, "cloudwatch event", []byte(aws.ToString(e.Message)))
	}

	imds.attachProfile()
	scan()
	fs = findings()
	if fs[profileID]["record"] != "ARCHIVED" || fs[profileID]["compliance"] != "PASSED" {
		t.Errorf("fixed finding in moto: %v, want ARCHIVED and PASSED", fs[profileID])
	}
	ev, _ = logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/ec2sec/findings"), LogStreamName: aws.String("i-0fffffffffffffff6"), StartFromHead: aws.Bool(true)})
	var changed bool
	for _, e := range ev.Events[n:] {
		changed = changed || strings.Contains(aws.ToString(e.Message), `"lifecycle":"changed"`)
	}
	if !changed {
		t.Error("no changed-result event after the fix")
	}
}
