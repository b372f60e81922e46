package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ec2sec/ec2sec/internal/fakeec2"
	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/procfs/procfstest"
)

// ec2Listeners: sshd on 0.0.0.0:22, 0.0.0.0:2222 and 0.0.0.0:2022.
const ec2Listeners = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 100 0 0 10 0
   2: 00000000:07E6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 100 0 0 10 0
`

// ec2Scene is a host (sshd listening, fake IMDS for the moto instance) and the EC2 API (moto
// behind the counting front), wired through the standard environment.
type ec2Scene struct {
	seeded fakeec2.Seeded
	front  *fakeec2.Server
	imds   *fakeimds.Server
	root   string
	proc   string
}

func newEC2Scene(t *testing.T) *ec2Scene {
	t.Helper()
	testenv.System(t) // moto_server behind the EC2 API fake
	moto := testenv.StartMoto(t)
	sc := &ec2Scene{seeded: fakeec2.Seed(t, fakeec2.Client(moto), types.HttpTokensStateRequired, 1)}
	sc.front = fakeec2.New(t, moto)
	t.Setenv("AWS_ENDPOINT_URL_EC2", sc.front.URL)
	sc.imds = fakeimds.New(t)
	sc.imds.Set(func(s *fakeimds.Server) { s.Paths["dynamic/instance-identity/document"] = sc.seeded.IdentityDocument() })
	sc.root = t.TempDir()
	if err := os.MkdirAll(filepath.Join(sc.root, "etc/ssh"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sc.root, "etc/ssh/sshd_config"), []byte("Port 22\nPort 2222\nPort 2022\nPasswordAuthentication no\n"), 0o644)
	sc.proc = procfstest.Build(t, t.TempDir(), []procfstest.Proc{
		{PID: 812, Comm: "sshd", Exe: "/usr/sbin/sshd", Sockets: []uint64{1001, 1002, 1003}},
	}, map[string]string{"net/tcp": ec2Listeners, "net/tcp6": ""})
	return sc
}

func (sc *ec2Scene) scan(t *testing.T, names ...string) *Report {
	t.Helper()
	sc.front.Reset()
	r, err := Scan(context.Background(), ScanOptions{
		Root: sc.root, Proc: sc.proc, Probes: names,
		Config: Config{ProbeTimeout: Duration{20 * time.Second}},
		IMDS:   metadata.New(metadata.Options{Endpoint: sc.imds.URL}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestScanEC2APICorrelations runs imds, sshd and ec2api together through Scan, with the EC2
// API from AWS_ENDPOINT_URL_EC2 and credentials from the default chain: a world-open group
// on sshd's ports raises exactly those listeners to CRITICAL, and imds-metadata-options is
// judged against the imds probe's measurement.
func TestScanEC2APICorrelations(t *testing.T) {
	sc := newEC2Scene(t)
	r := sc.scan(t, "imds", "sshd", "ec2api")
	for _, run := range r.Probes {
		if run.Status != "ok" {
			t.Errorf("probe %s: %s %s", run.Name, run.Status, run.Error)
		}
	}
	calls := sc.front.Calls()
	for _, a := range probes.EC2Actions {
		if n := calls[strings.TrimPrefix(a, "ec2:")]; n != 1 {
			t.Errorf("%s called %d times in one scan, want 1 (all calls: %v)", a, n, calls)
		}
	}
	if len(calls) != len(probes.EC2Actions) {
		t.Errorf("calls %v: only the documented actions may be used", calls)
	}

	sev := map[string]probes.Severity{}
	for _, res := range results(r, "ssh-listening-public") {
		sev[res.Resource] = res.Severity
		if res.Severity == probes.Critical && !slices.Contains(res.Evidence["raised_by"].([]string), "sg-world-open-admin-port") {
			t.Errorf("%s: raised_by %v", res.Resource, res.Evidence["raised_by"])
		}
	}
	want := map[string]probes.Severity{"tcp://0.0.0.0:22": probes.Critical, "tcp://0.0.0.0:2222": probes.Critical, "tcp://0.0.0.0:2022": probes.Medium}
	for res, s := range want {
		if sev[res] != s {
			t.Errorf("ssh-listening-public %s: %s, want %s (all: %v)", res, sev[res], s, sev)
		}
	}
	sgs := results(r, "sg-world-open-admin-port")
	if len(sgs) != 2 || sgs[0].ID == sgs[1].ID || sgs[0].Severity != probes.Critical {
		t.Errorf("sg results (one per group and port, distinct ids): %+v", sgs)
	}

	mo := results(r, "imds-metadata-options")
	if len(mo) != 1 || mo[0].Status != probes.Passed || mo[0].Evidence["measured_agrees"] != true || mo[0].Resource != "arn:aws:ec2:us-east-1:123456789012:instance/"+sc.seeded.InstanceID {
		t.Fatalf("imds-metadata-options with IMDSv2 and hop 1 on both sides: %+v", mo)
	}

	// The host now answers IMDSv1 although the API requires tokens: the host side is wrong.
	sc.imds.Set(func(s *fakeimds.Server) { s.V1 = true })
	r = sc.scan(t, "imds", "ec2api")
	mo = results(r, "imds-metadata-options")
	if len(mo) != 1 || mo[0].Status != probes.Failed || mo[0].Severity != probes.High || !strings.Contains(mo[0].Reason, "the host side is wrong") {
		t.Fatalf("API required, host answers v1: %+v", mo)
	}
	b, _ := json.Marshal(mo[0].Evidence["disagreements"])
	if !strings.Contains(string(b), `"setting":"HttpTokens"`) || !strings.Contains(string(b), `"wrong":"host"`) {
		t.Errorf("disagreements %s", b)
	}
}

// TestScanEC2APICredentials: the probe is off without credentials (NOT_AVAILABLE, no call
// made), and on with the instance profile's credentials, fetched through the scan's IMDS.
func TestScanEC2APICredentials(t *testing.T) {
	sc := newEC2Scene(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")

	r := sc.scan(t, "ec2api")
	for _, res := range r.Results {
		if res.Status != probes.NotAvailable || res.Reason != "no AWS credentials found; the probe is off" {
			t.Errorf("%s without credentials: %s: %s", res.Check, res.Status, res.Reason)
		}
	}
	if calls := sc.front.Calls(); len(calls) != 0 {
		t.Errorf("calls without credentials: %v", calls)
	}

	sc.imds.Set(func(s *fakeimds.Server) {
		s.Paths["meta-data/iam/security-credentials/"] = "ec2sec-role"
		s.Paths["meta-data/iam/security-credentials/ec2sec-role"] = `{"Code":"Success","LastUpdated":"2026-11-28T10:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAFAKEROLE00000001","SecretAccessKey":"fake-role-secret","Token":"fake-role-token","Expiration":"2099-01-01T00:00:00Z"}`
	})
	r = sc.scan(t, "ec2api")
	if res := results(r, "ami-public"); len(res) != 1 || res[0].Status != probes.Failed {
		t.Errorf("with the instance profile's credentials: %+v", res)
	}
	if keys := sc.front.AccessKeys(); !slices.Equal(keys, []string{"ASIAFAKEROLE00000001"}) {
		t.Errorf("requests signed with %v, want the instance profile's key", keys)
	}
}
