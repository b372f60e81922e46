package forwarder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	"github.com/ec2sec/ec2sec/agent"
	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testca"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// signedIMDS serves an instance whose identity the test CA signs, as IMDS does (token first),
// with no instance profile, at the kernel's default TTL.
func signedIMDS(t *testing.T, ca *testca.CA, inst string) *fakeimds.Server {
	doc := testca.Document(inst, acct, region)
	s := fakeimds.New(t)
	s.Set(func(s *fakeimds.Server) {
		s.HopLimit = 0
		s.Paths = map[string]string{
			"dynamic/instance-identity/document": doc,
			"dynamic/instance-identity/rsa2048":  ca.Sign(t, doc, testca.Options{}),
			"meta-data/hostname":                 "ip-10-0-0-12.ec2.internal",
			"meta-data/services/partition":       "aws",
			"meta-data/services/domain":          "amazonaws.com",
		}
	})
	return s
}

// The done-when of central mode: `ec2sec scan --report` in central mode against moto writes
// its findings only to CloudWatch Logs (moto's Security Hub has none); the subscription
// payload built from what moto stored, handed to the forwarder, puts them into moto's
// Security Hub, for the signing instance. moto does not run subscriptions, so the test plays
// CloudWatch Logs' part: the payload is what it would send.
func TestCentralModeThroughMoto(t *testing.T) {
	url := testenv.StartMoto(t)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", url)
	t.Setenv("AWS_ENDPOINT_URL_SECURITYHUB", url)
	ca := testca.New(t, "aws us-east-1")
	const inst = "i-0ddddddddddddddd4"
	imds := signedIMDS(t, ca, inst)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgPath, []byte("state_dir: "+filepath.Join(dir, "state")+"\nsecurity_hub:\n  mode: central\n"), 0o600)
	var out, errb bytes.Buffer
	c := agent.ScanCommand{Stdout: &out, Stderr: &errb, ConfigPath: cfgPath, Root: t.TempDir(), Proc: t.TempDir(), ProcSet: true, Format: "json", Report: true,
		ScanOptions: agent.ScanOptions{IMDS: metadata.New(metadata.Options{Endpoint: imds.URL})},
		Reporter:    agent.ReporterOptions{AWS: sink.AWSOptions{MaxAttempts: 2, MaxBackoff: 50 * time.Millisecond, HTTPTimeout: 10 * time.Second}}}
	if code := c.Run(context.Background()); code != agent.ExitOK || errb.Len() > 0 {
		t.Fatalf("scan --report: exit %d: %s", code, errb.String())
	}
	ctx := context.Background()
	cfg, err := sink.LoadAWS(ctx, sink.AWSOptions{Region: region})
	if err != nil {
		t.Fatal(err)
	}
	hub := securityhub.NewFromConfig(cfg)
	findings := func() []string {
		o, err := hub.GetFindings(ctx, &securityhub.GetFindingsInput{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, f := range o.Findings {
			ids = append(ids, aws.ToString(f.Id))
			if r := aws.ToString(f.Resources[0].Id); r != "arn:aws:ec2:us-east-1:"+acct+":instance/"+inst {
				t.Errorf("finding %s about %s", aws.ToString(f.Id), r)
			}
		}
		return ids
	}
	if ids := findings(); len(ids) != 0 {
		t.Fatalf("the agent imported into Security Hub itself: %v", ids)
	}
	logs := cloudwatchlogs.NewFromConfig(cfg)
	ev, err := logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/ec2sec/findings"), LogStreamName: aws.String(inst), StartFromHead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	d := &LogsData{MessageType: "DATA_MESSAGE", Owner: acct, LogGroup: "/ec2sec/findings", LogStream: inst, SubscriptionFilters: []string{"ec2sec-forwarder"}}
	for i, e := range ev.Events {
		// What the stack's filter { $.type = "findings" } lets through.
		if strings.Contains(aws.ToString(e.Message), `"type":"findings"`) {
			d.LogEvents = append(d.LogEvents, LogEvent{ID: string(rune('a' + i)), Timestamp: aws.ToInt64(e.Timestamp), Message: aws.ToString(e.Message)})
		}
	}
	if len(d.LogEvents) == 0 {
		t.Fatalf("no findings event among %d events in moto", len(ev.Events))
	}
	t.Setenv("AWS_REGION", region)
	t.Setenv("EC2SEC_TRUST_PEM", ca.PEM(region))
	t.Setenv("EC2SEC_HUB_ACCOUNT", acct)
	var logb bytes.Buffer
	fw, err := FromEnv(ctx, os.Getenv, &bytes.Buffer{}, discardLogTo(&logb))
	if err != nil {
		t.Fatal(err)
	}
	res, err := fw.Handle(ctx, SubscriptionEvent(d))
	if err != nil || len(res.Rejected) > 0 || res.Imported == 0 {
		t.Fatalf("forwarder: %+v %v\n%s", res, err, logb.String())
	}
	ids := findings()
	if len(ids) != res.Imported {
		t.Errorf("%d findings in moto, %d imported", len(ids), res.Imported)
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, inst+"/") {
			t.Errorf("finding %s is not the instance's", id)
		}
	}
	t.Logf("%d findings delivered through the forwarder", len(ids))
}
