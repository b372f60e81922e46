package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	shtypes "github.com/aws/aws-sdk-go-v2/service/securityhub/types"

	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// hubGate stands between the agent and moto's Security Hub: while down it drops every
// connection unanswered (an endpoint down, which moto cannot be for one service only); while
// up it passes calls through and records, in order, the BatchImportFindings bodies moto
// accepted.
type hubGate struct {
	*httptest.Server
	down   atomic.Bool
	mu     sync.Mutex
	bodies [][]byte
}

func newHubGate(t *testing.T, moto string) *hubGate {
	t.Helper()
	u, err := url.Parse(moto)
	if err != nil {
		t.Fatal(err)
	}
	g := &hubGate{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.down.Load() {
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		proxy.ServeHTTP(rec, r)
		if r.URL.Path == "/findings/import" && rec.code == http.StatusOK {
			g.mu.Lock()
			g.bodies = append(g.bodies, body)
			g.mu.Unlock()
		}
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *hubGate) imports() [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]byte(nil), g.bodies...)
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }

// TestMotoExposureLifecycle: the exposure lifecycle end to end against moto_server. A secret
// appears in the user data while Security Hub is down (the scan's findings wait in the
// spool); the user data is cleaned; the next scan, with Security Hub back, delivers the
// secret first as it was seen (FAILED), then as no longer seen: still FAILED and ACTIVE,
// saying when it was last seen and to rotate it. A daily refresh keeps it so. Nothing the
// agent sends holds the secret or a Workflow.
func TestMotoExposureLifecycle(t *testing.T) {
	testenv.System(t)
	moto := testenv.StartMoto(t)
	gate := newHubGate(t, moto)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto)
	t.Setenv("AWS_ENDPOINT_URL_SECURITYHUB", gate.URL)
	t.Setenv("AWS_ENDPOINT_URL_STS", moto)
	t.Setenv("AWS_SECRET_ACCESS_KEY", plantedSigningKey)
	const instance = "i-0fffffffffffffff7"
	imds := fakeIMDS(t, instance)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	stateDir := filepath.Join(dir, "state")
	writeCfg(t, cfgPath, "state_dir: "+stateDir+"\n")
	scan := func(refresh time.Duration) string {
		t.Helper()
		var out, errb bytes.Buffer
		c := ScanCommand{Stdout: &out, Stderr: &errb, ConfigPath: cfgPath, Root: t.TempDir(), Proc: t.TempDir(), ProcSet: true, Format: "json", Report: true,
			ScanOptions: ScanOptions{IMDS: metadata.New(metadata.Options{Endpoint: imds.URL})},
			Reporter:    ReporterOptions{AWS: fastAWS(), Refresh: refresh}}
		if code := c.Run(context.Background()); code != ExitOK {
			t.Fatalf("scan --report: exit %d: %s", code, errb.String())
		}
		assertNoLeak(t, "scan output", out.Bytes())
		assertNoLeak(t, "scan stderr", errb.Bytes())
		return errb.String()
	}
	ctx := context.Background()
	cfg, err := sink.LoadAWS(ctx, sink.AWSOptions{Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	hub := securityhub.NewFromConfig(cfg, func(o *securityhub.Options) { o.BaseEndpoint = aws.String(moto) })
	secrets := func() map[string]shtypes.AwsSecurityFinding {
		t.Helper()
		out, err := hub.GetFindings(ctx, &securityhub.GetFindingsInput{})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]shtypes.AwsSecurityFinding{}
		for _, f := range out.Findings {
			if aws.ToString(f.GeneratorId) == "ec2sec/userdata-secret" {
				m[aws.ToString(f.Id)] = f
			}
		}
		return m
	}

	// 1. The secret is there; Security Hub is down.
	gate.down.Store(true)
	if stderr := scan(0); !strings.Contains(stderr, "not everything was delivered") {
		t.Fatalf("scan with Security Hub down: stderr %q", stderr)
	}
	if n := len(secrets()); n != 0 {
		t.Fatalf("%d secret findings in moto while Security Hub was down", n)
	}
	firstSeen := time.Now().UTC()

	// 2. The user data is cleaned; Security Hub is back.
	imds.cleanUserData()
	gate.down.Store(false)
	time.Sleep(1100 * time.Millisecond) // scans a second apart: distinct UpdatedAt
	if stderr := scan(0); stderr != "" {
		t.Fatalf("scan with Security Hub back: %s", stderr)
	}
	type version struct{ status, record, desc string }
	byID := map[string][]version{}
	for _, b := range gate.imports() {
		var in struct {
			Findings []map[string]any
		}
		if err := json.Unmarshal(b, &in); err != nil {
			t.Fatal(err)
		}
		for _, f := range in.Findings {
			if _, ok := f["Workflow"]; ok {
				t.Errorf("the agent sent a Workflow: %v", f["Workflow"])
			}
			if field(f, "GeneratorId") != "ec2sec/userdata-secret" {
				continue
			}
			id, _ := f["Id"].(string)
			d, _ := f["Description"].(string)
			byID[id] = append(byID[id], version{field(f, "Compliance.Status").(string), f["RecordState"].(string), d})
		}
	}
	if len(byID) == 0 {
		t.Fatal("no userdata-secret finding reached Security Hub")
	}
	for id, vs := range byID {
		if len(vs) != 2 {
			t.Errorf("%s: %d versions delivered, want 2 (as seen, then no longer seen): %+v", id, len(vs), vs)
			continue
		}
		if vs[0].status != "FAILED" || vs[0].record != "ACTIVE" || strings.Contains(vs[0].desc, "No longer seen") {
			t.Errorf("%s: first version delivered %+v, want the secret as seen, FAILED", id, vs[0])
		}
		if vs[1].status != "FAILED" || vs[1].record != "ACTIVE" || !strings.Contains(vs[1].desc, "No longer seen") {
			t.Errorf("%s: second version delivered %+v, want FAILED, ACTIVE, no longer seen", id, vs[1])
		}
	}
	check := func(when string) {
		t.Helper()
		fs := secrets()
		if len(fs) != len(byID) {
			t.Fatalf("%s: %d secret findings in moto, want %d", when, len(fs), len(byID))
		}
		for id, f := range fs {
			d := aws.ToString(f.Description)
			if f.RecordState != shtypes.RecordStateActive || f.Compliance == nil || f.Compliance.Status != shtypes.ComplianceStatusFailed {
				t.Errorf("%s: %s in moto: %s %v, want ACTIVE FAILED", when, id, f.RecordState, f.Compliance)
			}
			if !strings.Contains(d, "last seen at "+firstSeen.Format("2006-01-02T")) || !strings.Contains(d, "rotate it") {
				t.Errorf("%s: %s description %q: want when it was last seen and to rotate it", when, id, d)
			}
			if ls := aws.ToString(f.LastObservedAt); ls >= aws.ToString(f.UpdatedAt) {
				t.Errorf("%s: %s LastObservedAt %s not before UpdatedAt %s: want the last sighting", when, id, ls, aws.ToString(f.UpdatedAt))
			}
		}
	}
	check("cleaned")

	// 3. Still clean, a refresh due: re-asserted, never archived.
	before := len(gate.imports())
	time.Sleep(1100 * time.Millisecond)
	scan(time.Nanosecond)
	if len(gate.imports()) == before {
		t.Error("no refresh import")
	}
	check("refreshed")

	logs := cloudwatchlogs.NewFromConfig(cfg, func(o *cloudwatchlogs.Options) { o.BaseEndpoint = aws.String(moto) })
	ev, err := logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/ec2sec/findings"), LogStreamName: aws.String(instance), StartFromHead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	unseen := 0
	for _, e := range ev.Events {
		m := aws.ToString(e.Message)
		assertNoLeak(t, "cloudwatch event", []byte(m))
		if strings.Contains(m, `"lifecycle":"unseen"`) {
			unseen++
			if !strings.Contains(m, `"status":"FAILED"`) {
				t.Errorf("unseen event without FAILED: %s", m)
			}
		}
	}
	if unseen != len(byID) {
		t.Errorf("%d unseen events in CloudWatch, want %d", unseen, len(byID))
	}
	bodies := gate.imports()
	for _, b := range bodies {
		assertNoLeak(t, "BatchImportFindings body", b)
	}
	awsfake.ValidateBatchImportFindings(t, bodies)
	assertDirNoLeak(t, stateDir)
}
