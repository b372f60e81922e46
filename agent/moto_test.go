package agent

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"

	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// startMoto runs moto_server on a free loopback port for the test and returns its URL.
func startMoto(t *testing.T) string {
	t.Helper()
	bin := testenv.Tool(t, "moto_server")
	port := testenv.FreePort(t)
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = testenv.Environ()
	if err := cmd.Start(); err != nil {
		testenv.Missing(t, "moto_server does not start: "+err.Error())
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			if resp, err := http.Get(url + "/moto-api/"); err == nil {
				resp.Body.Close()
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not come up:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMotoEndToEnd: `scan --report` against moto_server (CloudWatch Logs and Security Hub),
// reached through AWS_ENDPOINT_URL_*; then the instance profile is attached, and the next
// report archives the finding as PASSED.
func TestMotoEndToEnd(t *testing.T) {
	url := startMoto(t)
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
		c := ScanCommand{Stdout: &out, Stderr: &errb, ConfigPath: cfgPath, Root: t.TempDir(), Format: "json", Report: true,
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

	imds.profile.Store(true)
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
