package probes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/ec2sec/ec2sec/internal/fakeec2"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/procfs/procfstest"
)

// ec2Listeners is a procfs net/tcp where sshd listens on 0.0.0.0:22, 0.0.0.0:2222 and
// 0.0.0.0:2022, and mysqld on 127.0.0.1:3306.
const ec2Listeners = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 100 0 0 10 0
   2: 00000000:07E6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 100 0 0 10 0
   3: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 1004 1 0000000000000000 100 0 0 10 0
`

// ec2Env is an Env for the seeded instance, with sshd listening as ec2Listeners says, and
// the EC2 API at endpoint.
func ec2Env(t *testing.T, s fakeec2.Seeded, endpoint string) *Env {
	t.Helper()
	root := fixtureRoot(t, map[string]string{"etc/ssh/sshd_config": "Port 22\nPort 2222\nPort 2022\n"})
	proc := procfstest.Build(t, t.TempDir(), []procfstest.Proc{
		{PID: 812, Comm: "sshd", Exe: "/usr/sbin/sshd", Sockets: []uint64{1001, 1002, 1003}},
		{PID: 900, Comm: "mysqld", Exe: "/usr/sbin/mysqld", Sockets: []uint64{1004}},
	}, map[string]string{"net/tcp": ec2Listeners, "net/tcp6": ""})
	env := testEnv(t, onRoot(root), withProc(proc))
	env.Identity = metadata.Identity{
		InstanceID: s.InstanceID, AccountID: fakeec2.Account, Region: fakeec2.Region,
		Partition: "aws", Domain: "amazonaws.com", AMIID: s.ImageID, Reachable: true,
	}
	client := fakeec2.Client(endpoint)
	env.EC2 = func(context.Context) (EC2API, error) { return client, nil }
	return env
}

func runEC2API(t *testing.T, env *Env) []Result {
	t.Helper()
	rs, err := EC2APIProbe{}.Run(context.Background(), env)
	if err != nil {
		t.Fatalf("ec2api: %v", err)
	}
	for _, c := range (EC2APIProbe{}).Checks() {
		if len(byCheck(rs, c.ID)) == 0 {
			t.Errorf("no result for %s", c.ID)
		}
	}
	return rs
}

func arn(kind, id string) string {
	return fmt.Sprintf("arn:aws:ec2:%s:%s:%s/%s", fakeec2.Region, fakeec2.Account, kind, id)
}

// TestEC2APIAgainstMoto runs the probe against moto_server seeded with an instance whose
// groups, volumes, VPC and AMI each fail a check, then fixes them one by one and looks again.
func TestEC2APIAgainstMoto(t *testing.T) {
	moto := testenv.StartMoto(t)
	direct := fakeec2.Client(moto)
	s := fakeec2.Seed(t, direct, types.HttpTokensStateRequired, 1)
	front := fakeec2.New(t, moto)
	front.Set(func(f *fakeec2.Server) { f.SerialConsole = true })
	env := ec2Env(t, s, front.URL)

	rs := runEC2API(t, env)
	if got := front.Calls(); len(got) != 7 || slices.ContainsFunc(slices.Collect(mapValues(got)), func(n int) bool { return n != 1 }) {
		t.Errorf("API calls %v, want each of the 7 actions exactly once", got)
	}

	// Security groups: 22 (IPv4 world) and 2222 (sshd's port, inside a ::/0 range) of the open
	// group; not 443 (no admin port), not the closed group's 3389 or 2022 (narrow sources).
	sg := byCheck(rs, "sg-world-open-admin-port")
	if len(sg) != 2 {
		t.Fatalf("sg-world-open-admin-port: want 2 results, got %+v", sg)
	}
	for i, want := range []struct {
		port   int
		source string
		sshd   bool
	}{{22, "0.0.0.0/0", true}, {2222, "::/0", true}} {
		r := sg[i]
		if r.Status != Failed || r.Resource != arn("security-group", s.OpenGroup) || r.Evidence["port"] != want.port {
			t.Errorf("sg result %d: %s %s port %v: %s", i, r.Status, r.Resource, r.Evidence["port"], r.Reason)
		}
		if src := r.Evidence["sources"].([]string); !slices.Equal(src, []string{want.source}) {
			t.Errorf("port %d sources %v, want %s", want.port, src, want.source)
		}
		if r.Evidence["sshd_listens"] != want.sshd || r.Key != fmt.Sprintf("port/%d", want.port) {
			t.Errorf("port %d evidence %v", want.port, r.Evidence)
		}
	}

	// Volumes: the attached unencrypted one (and moto's unencrypted root), not the encrypted one.
	var failedVols []string
	for _, r := range byCheck(rs, "ebs-unencrypted-volume") {
		if r.Status != Failed {
			t.Errorf("ebs-unencrypted-volume: %+v", r)
		}
		failedVols = append(failedVols, r.Resource)
	}
	if !slices.Contains(failedVols, arn("volume", s.PlainVolume)) || slices.Contains(failedVols, arn("volume", s.EncryptedVolume)) {
		t.Errorf("unencrypted volumes reported %v; plain %s, encrypted %s", failedVols, s.PlainVolume, s.EncryptedVolume)
	}

	expect := func(rs []Result, check string, st Status, resource, reasonPart string) {
		t.Helper()
		r := one(t, rs, check)
		if r.Status != st || r.Resource != resource || !strings.Contains(r.Reason, reasonPart) {
			t.Errorf("%s: got %s on %q (%s), want %s on %q containing %q", check, r.Status, r.Resource, r.Reason, st, resource, reasonPart)
		}
	}
	account := "AWS::::Account:" + fakeec2.Account
	image := fmt.Sprintf("arn:aws:ec2:%s::image/%s", fakeec2.Region, s.ImageID)
	expect(rs, "ebs-default-encryption-off", Failed, account, "off in us-east-1")
	expect(rs, "vpc-flow-logs-off", Failed, arn("vpc", s.VPC), "no flow log")
	expect(rs, "ami-public", Failed, image, "owned by this account and public")
	expect(rs, "serial-console-access-enabled", Failed, account, "enabled")
	expect(rs, "imds-metadata-options", Passed, "", "require IMDSv2 with hop limit 1")
	mo := one(t, rs, "imds-metadata-options")
	if mo.Evidence[evHTTPTokens] != "required" || mo.Evidence[evHopLimit] != 1 || mo.Evidence[evHTTPEndpoint] != "enabled" {
		t.Errorf("imds-metadata-options evidence %v", mo.Evidence)
	}

	// Fix everything the API can fix and look again.
	cx := context.Background()
	fakeec2.SetEBSDefaultEncryption(t, direct, true)
	flowLog := func(group string) {
		t.Helper()
		if _, err := direct.CreateFlowLogs(cx, &ec2.CreateFlowLogsInput{
			ResourceIds: []string{s.VPC}, ResourceType: types.FlowLogsResourceTypeVpc, TrafficType: types.TrafficTypeReject,
			LogDestinationType: types.LogDestinationTypeCloudWatchLogs, LogGroupName: aws.String(group),
			DeliverLogsPermissionArn: aws.String("arn:aws:iam::123456789012:role/flow"),
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A flow log to a log group that does not exist fails to deliver: a WARNING, not a pass.
	flowLog("missing-group")
	front.Reset()
	expect(runEC2API(t, env), "vpc-flow-logs-off", Warning, arn("vpc", s.VPC), "every one fails to deliver")
	fakeec2.CreateLogGroup(t, moto, "vpc-flow")
	flowLog("vpc-flow")
	if _, err := direct.ModifyImageAttribute(cx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(s.ImageID),
		LaunchPermission: &types.LaunchPermissionModifications{Remove: []types.LaunchPermission{{Group: types.PermissionGroupAll}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.RevokeSecurityGroupIngress(cx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(s.OpenGroup),
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.ModifyInstanceMetadataOptions(cx, &ec2.ModifyInstanceMetadataOptionsInput{InstanceId: aws.String(s.InstanceID), HttpTokens: types.HttpTokensStateOptional}); err != nil {
		t.Fatal(err)
	}
	front.Set(func(f *fakeec2.Server) { f.SerialConsole = false })
	front.Reset()

	rs = runEC2API(t, env)
	if got := front.Calls(); len(got) != 7 {
		t.Errorf("second scan calls %v", got)
	}
	expect(rs, "ebs-default-encryption-off", Passed, account, "on in us-east-1")
	expect(rs, "vpc-flow-logs-off", Passed, arn("vpc", s.VPC), "2 flow log(s)")
	expect(rs, "ami-public", Passed, image, "not public")
	expect(rs, "serial-console-access-enabled", Passed, account, "disabled")
	expect(rs, "imds-metadata-options", Failed, "", "HttpTokens optional")
	sg = byCheck(rs, "sg-world-open-admin-port")
	if len(sg) != 1 || sg[0].Evidence["port"] != 2222 {
		t.Errorf("after revoking 22: %+v", sg)
	}
}

func mapValues(m map[string]int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// TestEC2APIAccessDenied holds the probe to naming the exact IAM action a missing permission
// needs, per check, and to making no other call than the ones it has.
func TestEC2APIAccessDenied(t *testing.T) {
	moto := testenv.StartMoto(t)
	s := fakeec2.Seed(t, fakeec2.Client(moto), types.HttpTokensStateRequired, 1)
	front := fakeec2.New(t, moto)
	env := ec2Env(t, s, front.URL)

	t.Run("one action denied", func(t *testing.T) {
		front.Set(func(f *fakeec2.Server) { f.Deny = map[string]bool{"DescribeVolumes": true} })
		rs := runEC2API(t, env)
		r := one(t, rs, "ebs-unencrypted-volume")
		if r.Status != NotAvailable || !strings.Contains(r.Reason, "grant ec2:DescribeVolumes") || strings.Contains(r.Reason, "Encoded") {
			t.Errorf("denied DescribeVolumes: %s: %s", r.Status, r.Reason)
		}
		if r := one(t, rs, "vpc-flow-logs-off"); r.Status != Failed {
			t.Errorf("the other checks still look: vpc-flow-logs-off %s: %s", r.Status, r.Reason)
		}
	})
	t.Run("everything denied", func(t *testing.T) {
		deny := map[string]bool{}
		for _, a := range EC2Actions {
			deny[strings.TrimPrefix(a, "ec2:")] = true
		}
		front.Set(func(f *fakeec2.Server) { f.Deny = deny })
		front.Reset()
		rs := runEC2API(t, env)
		want := map[string]string{
			"sg-world-open-admin-port":      "DescribeInstances",
			"ebs-unencrypted-volume":        "DescribeInstances",
			"vpc-flow-logs-off":             "DescribeInstances",
			"imds-metadata-options":         "DescribeInstances",
			"ami-public":                    "DescribeImages",
			"ebs-default-encryption-off":    "GetEbsEncryptionByDefault",
			"serial-console-access-enabled": "GetSerialConsoleAccessStatus",
		}
		for check, action := range want {
			r := one(t, rs, check)
			if r.Status != NotAvailable || !strings.Contains(r.Reason, "grant ec2:"+action+" ") {
				t.Errorf("%s: %s: %s, want NOT_AVAILABLE naming ec2:%s", check, r.Status, r.Reason, action)
			}
		}
		calls := front.Calls()
		if calls["DescribeSecurityGroups"] != 0 || calls["DescribeVolumes"] != 0 || calls["DescribeFlowLogs"] != 0 {
			t.Errorf("calls after a denied DescribeInstances: %v", calls)
		}
	})
}

func TestEC2APIOffWithoutCredentialsOrInstance(t *testing.T) {
	env := testEnv(t)
	env.Identity = metadata.Identity{InstanceID: "i-0123456789abcdef0", AccountID: "123456789012", Region: "us-east-1", Partition: "aws"}
	env.EC2 = func(context.Context) (EC2API, error) { return nil, ErrNoAWSCredentials }
	if _, err := (EC2APIProbe{}).Run(context.Background(), env); !errors.Is(err, ErrNoAWSCredentials) || err.Error() != "no AWS credentials found; the probe is off" {
		t.Errorf("without credentials: %v", err)
	}
	env.Identity = metadata.Identity{Reason: "not on EC2: IMDS did not answer"}
	called := false
	env.EC2 = func(context.Context) (EC2API, error) { called = true; return nil, nil }
	if _, err := (EC2APIProbe{}).Run(context.Background(), env); err == nil || err.Error() != "no instance to describe: not on EC2: IMDS did not answer" || called {
		t.Errorf("off EC2: %v (client built: %v)", err, called)
	}
}

// TestEC2APIFake covers what moto cannot do: a region whose API does not know the instance,
// credentials refused, and odd answers.
func TestEC2APIFake(t *testing.T) {
	front := fakeec2.New(t, "")
	s := fakeec2.Seeded{InstanceID: "i-0123456789abcdef0", ImageID: "ami-0123456789abcdef0"}
	env := ec2Env(t, s, front.URL)
	const empty = `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>1</requestId><reservationSet/></DescribeInstancesResponse>`
	const images = `<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>1</requestId><imagesSet><item><imageId>ami-0123456789abcdef0</imageId><imageOwnerId>137112412989</imageOwnerId><isPublic>true</isPublic><name>al2023</name></item></imagesSet></DescribeImagesResponse>`
	const ebs = `<GetEbsEncryptionByDefaultResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>1</requestId><ebsEncryptionByDefault>true</ebsEncryptionByDefault></GetEbsEncryptionByDefaultResponse>`
	front.Set(func(f *fakeec2.Server) {
		f.Override = map[string]string{"DescribeInstances": empty, "DescribeImages": images, "GetEbsEncryptionByDefault": ebs}
	})
	rs := runEC2API(t, env)
	for _, check := range []string{"sg-world-open-admin-port", "ebs-unencrypted-volume", "vpc-flow-logs-off", "imds-metadata-options"} {
		if r := one(t, rs, check); r.Status != NotAvailable || !strings.Contains(r.Reason, "does not know instance i-0123456789abcdef0") {
			t.Errorf("%s: %s: %s", check, r.Status, r.Reason)
		}
	}
	if r := one(t, rs, "ami-public"); r.Status != Passed || !strings.Contains(r.Reason, "owned by account 137112412989") {
		t.Errorf("someone else's public AMI: %s: %s", r.Status, r.Reason)
	}
	if r := one(t, rs, "ebs-default-encryption-off"); r.Status != Passed {
		t.Errorf("ebs default: %s: %s", r.Status, r.Reason)
	}
	if r := one(t, rs, "serial-console-access-enabled"); r.Status != Passed {
		t.Errorf("serial console (fake, off): %s: %s", r.Status, r.Reason)
	}

	front.Set(func(f *fakeec2.Server) {
		f.Override = map[string]string{}
		f.Deny = map[string]bool{}
	})
	rs = runEC2API(t, env)
	if r := one(t, rs, "ebs-default-encryption-off"); r.Status != NotAvailable || !strings.Contains(r.Reason, "ec2:GetEbsEncryptionByDefault failed: InvalidAction") {
		t.Errorf("other API error: %s: %s", r.Status, r.Reason)
	}
}

func TestEC2Failure(t *testing.T) {
	api := func(code string) error {
		return fmt.Errorf("operation error EC2: X, https response error StatusCode: 403: %w", &smithy.GenericAPIError{Code: code, Message: "long " + strings.Repeat("x", 500)})
	}
	cases := []struct {
		err  error
		want string
	}{
		{api("UnauthorizedOperation"), "no permission to call ec2:DescribeVolumes (UnauthorizedOperation): grant ec2:DescribeVolumes to the instance role"},
		{api("AccessDenied"), "grant ec2:DescribeVolumes "},
		{api("AuthFailure"), "ec2:DescribeVolumes: the AWS credentials were refused (AuthFailure)"},
		{api("InternalError"), "ec2:DescribeVolumes failed: InternalError: long xxx"},
		{context.DeadlineExceeded, "ec2:DescribeVolumes did not answer within 5s"},
		{errors.New("dial tcp 127.0.0.1:1: connection refused"), "ec2:DescribeVolumes failed: dial tcp 127.0.0.1:1: connection refused"},
	}
	for _, c := range cases {
		got := ec2Failure("DescribeVolumes", c.err)
		if !strings.Contains(got, c.want) || len(got) > 400 {
			t.Errorf("ec2Failure(%v) = %q, want it to contain %q (and be short)", c.err, got, c.want)
		}
	}
}

// TestEC2APISlowEndpoint: a call that never answers costs no more than the probe's deadline,
// and the checks that depend on it say so; the others still report.
func TestEC2APISlowEndpoint(t *testing.T) {
	front := fakeec2.New(t, "")
	const ebs = `<GetEbsEncryptionByDefaultResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>1</requestId><ebsEncryptionByDefault>false</ebsEncryptionByDefault></GetEbsEncryptionByDefaultResponse>`
	front.Set(func(f *fakeec2.Server) {
		f.Hang = map[string]bool{"DescribeInstances": true, "DescribeImages": true}
		f.Override = map[string]string{"GetEbsEncryptionByDefault": ebs}
	})
	env := ec2Env(t, fakeec2.Seeded{InstanceID: "i-0123456789abcdef0", ImageID: "ami-0123456789abcdef0"}, front.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	rs, err := EC2APIProbe{}.Run(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the probe took %s past a 500ms deadline", d)
	}
	for _, check := range []string{"sg-world-open-admin-port", "imds-metadata-options", "ami-public"} {
		if r := one(t, rs, check); r.Status != NotAvailable || !strings.Contains(r.Reason, "deadline passed before ec2:") {
			t.Errorf("%s: %s: %s", check, r.Status, r.Reason)
		}
	}
	if r := one(t, rs, "ebs-default-encryption-off"); r.Status != Failed {
		t.Errorf("the answered call still counts: %s: %s", r.Status, r.Reason)
	}
}
