package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds ec2sec once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ec2sec-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ec2sec")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type result struct {
	code           int
	stdout, stderr string
}

// ec2sec runs the binary with the safe environment plus env.
func ec2sec(t *testing.T, env []string, args ...string) result {
	t.Helper()
	bin := binary(t) // built first: the build is not the run's time
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = testenv.Environ(env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run: %v", err)
	}
	return result{code, out.String(), errb.String()}
}

func TestUsageErrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("security_hub:\n  enable: true\n"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"scan", "--bogus"}, 2, "bogus"},
		{[]string{"scan", "--format", "xml"}, 2, `"xml"`},
		{[]string{"scan", "--fail-on", "severe"}, 2, `"severe"`},
		{[]string{"scan", "--probes", "imds,nosuch"}, 2, `"nosuch"`},
		{[]string{"scan", "--config", cfg}, 2, `security_hub.enable`},
		{[]string{"scan", "extra"}, 2, "extra"},
		{[]string{"frobnicate"}, 2, "frobnicate"},
		{[]string{}, 2, "Usage"},
		{[]string{"scan", "--root", "/nonexistent/root"}, 3, "/nonexistent/root"},
	} {
		r := ec2sec(t, nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("ec2sec %v: exit %d stderr %q; want exit %d naming %s", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}

func TestVersionAndChecks(t *testing.T) {
	r := ec2sec(t, nil, "version")
	if r.code != 0 || !strings.Contains(r.stdout, "ec2sec ") || !strings.Contains(r.stdout, "go1.") {
		t.Errorf("version: %d %q", r.code, r.stdout)
	}
	r = ec2sec(t, nil, "checks")
	for _, id := range []string{"imds-v1-enabled", "imds-hop-limit", "imds-no-instance-profile"} {
		if r.code != 0 || !strings.Contains(r.stdout, id) {
			t.Errorf("checks does not list %s: %q", id, r.stdout)
		}
	}
	r = ec2sec(t, nil, "checks", "--format", "markdown")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "# Check catalog") || !strings.Contains(r.stdout, "| imds-v1-enabled | imds |") {
		t.Errorf("checks --format markdown: %d %q", r.code, r.stdout)
	}
	if r = ec2sec(t, nil, "checks", "--format", "yaml"); r.code != 2 {
		t.Errorf("checks --format yaml: exit %d, want 2", r.code)
	}
}

func TestOffEC2(t *testing.T) {
	start := time.Now()
	r := ec2sec(t, nil, "scan", "--root", t.TempDir(), "--proc", t.TempDir(), "--format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("off EC2 the scan took %s", d) // a hang guard; the speed target is a benchmark
	}
	var rep struct {
		Host    map[string]any `json:"host"`
		Results []struct{ Check, Status, Reason string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if rep.Host["instance_id"] != nil {
		t.Errorf("instance_id %v off EC2", rep.Host["instance_id"])
	}
	for _, res := range rep.Results {
		if strings.HasPrefix(res.Check, "imds-") && (res.Status != "NOT_AVAILABLE" || !strings.Contains(res.Reason, "not on EC2")) {
			t.Errorf("%s: %s %q off EC2", res.Check, res.Status, res.Reason)
		}
	}
	r = ec2sec(t, []string{"AWS_EC2_METADATA_DISABLED=true"}, "scan", "--root", t.TempDir(), "--proc", t.TempDir(), "--probes", "imds", "--format", "json")
	if !strings.Contains(r.stdout, "AWS_EC2_METADATA_DISABLED") {
		t.Errorf("disabled IMDS not explained: %s", r.stdout)
	}
}

func TestOutputFileAndFailOn(t *testing.T) {
	s := fakeimds.New(t)
	s.V1 = true
	out := filepath.Join(t.TempDir(), "report.json")
	env := []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + s.URL}
	r := ec2sec(t, env, "scan", "--root", t.TempDir(), "--proc", t.TempDir(), "--probes", "imds", "--output", out, "--fail-on", "high")
	if r.code != 1 || r.stdout != "" {
		t.Errorf("IMDSv1 with --fail-on high: exit %d, stdout %q; want 1 and nothing on stdout", r.code, r.stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil || !json.Valid(b) {
		t.Fatalf("--output file: %v %q", err, b)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("report file mode %v, want 0600", fi.Mode().Perm())
	}
	r = ec2sec(t, env, "scan", "--root", t.TempDir(), "--proc", t.TempDir(), "--probes", "imds", "--fail-on", "critical")
	if r.code != 0 {
		t.Errorf("--fail-on critical with only HIGH: exit %d", r.code)
	}
	r = ec2sec(t, env, "scan", "--root", t.TempDir(), "--proc", t.TempDir(), "--probes", "imds", "--format", "table")
	if r.code != 0 || !strings.Contains(r.stdout, "FAILED") || strings.Contains(r.stdout, "\x1b[") {
		t.Errorf("table to a pipe: exit %d, colour codes or no FAILED group:\n%s", r.code, r.stdout)
	}
}

// volatile masks what changes from run to run in a report.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`"scanned_at": "[^"]+"`), `"scanned_at": "SCANNED_AT"`},
	{regexp.MustCompile(`"duration_ms": \d+`), `"duration_ms": 0`},
	{regexp.MustCompile(`http://127\.0\.0\.1:\d+`), `http://IMDS`},
}

// TestGoldenJSON checks the binary's whole JSON report on a fixture host against
// testdata/scan.golden.json (go test ./cmd/ec2sec -run Golden -update rewrites it).
func TestGoldenJSON(t *testing.T) {
	s := fakeimds.New(t)
	s.V1 = true
	s.HopLimit = 1
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("golden-host\n"), 0o644)
	r := ec2sec(t, []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + s.URL}, "scan", "--root", root, "--proc", t.TempDir(), "--probes", "imds", "--format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := r.stdout
	for _, v := range volatile {
		got = v.re.ReplaceAllString(got, v.with)
	}
	golden := filepath.Join("testdata", "scan.golden.json")
	if *update {
		os.WriteFile(golden, []byte(got), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("report differs from %s (-update to accept):\n%s", golden, got)
	}
}

// TestMetadataMock runs the binary against AWS's own IMDS emulator: IMDSv1 allowed is
// FAILED, --imdsv2 is PASSED, and the identity matches what the emulator serves.
func TestMetadataMock(t *testing.T) {
	mock := testenv.Tool(t, "ec2-metadata-mock")
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"v1 allowed", nil, "FAILED"},
		{"v2 only", []string{"--imdsv2"}, "PASSED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			ctx, cancel := context.WithCancel(context.Background())
			cmd := exec.CommandContext(ctx, mock, append([]string{"-n", "127.0.0.1", "-p", fmt.Sprint(port)}, tc.flags...)...)
			cmd.Dir = t.TempDir()
			cmd.Env = append(testenv.Environ(), "HOME="+cmd.Dir)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); cmd.Wait() }()
			url := fmt.Sprintf("http://127.0.0.1:%d", port)
			waitHTTP(t, url+"/latest/api/token")

			r := ec2sec(t, []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + url}, "scan", "--root", t.TempDir(), "--proc", t.TempDir(), "--probes", "imds", "--format", "json")
			var rep struct {
				Host    map[string]any
				Results []struct{ Check, Status, Reason string }
			}
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("exit %d json %v: %s %s", r.code, err, r.stdout, r.stderr)
			}
			for _, res := range rep.Results {
				if res.Check == "imds-v1-enabled" && res.Status != tc.want {
					t.Errorf("imds-v1-enabled %s (%s), want %s", res.Status, res.Reason, tc.want)
				}
				if res.Check == "imds-no-instance-profile" && res.Status != "PASSED" {
					t.Errorf("the emulator serves iam/info, yet %s: %s", res.Status, res.Reason)
				}
			}
			// The identity must be what the emulator serves (read here over IMDSv2).
			doc := getV2(t, url, "/latest/dynamic/instance-identity/document")
			var id struct{ InstanceID, AccountID, Region, ImageID string }
			id.InstanceID = jsonField(doc, "instanceId")
			id.AccountID = jsonField(doc, "accountId")
			id.Region = jsonField(doc, "region")
			id.ImageID = jsonField(doc, "imageId")
			if rep.Host["instance_id"] != id.InstanceID || rep.Host["account_id"] != id.AccountID ||
				rep.Host["region"] != id.Region || rep.Host["ami_id"] != id.ImageID || rep.Host["partition"] != "aws" {
				t.Errorf("host %v, emulator says %+v", rep.Host, id)
			}
			if h := getV2(t, url, "/latest/meta-data/hostname"); rep.Host["hostname"] != h {
				t.Errorf("hostname %v, emulator says %q", rep.Host["hostname"], h)
			}
		})
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	for range 100 {
		req, _ := http.NewRequest(http.MethodPut, url, nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

func getV2(t *testing.T, base, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, base+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok bytes.Buffer
	tok.ReadFrom(resp.Body)
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("X-aws-ec2-metadata-token", tok.String())
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return strings.TrimSpace(b.String())
}

func jsonField(doc, key string) string {
	var m map[string]any
	json.Unmarshal([]byte(doc), &m)
	s, _ := m[key].(string)
	return s
}

// TestOfflineImage: --root without --proc scans an image, not the running instance. IMDS is
// never asked (the builder's IMDSv1 must not fail the image's pipeline), the checks that
// would describe the builder are NOT_AVAILABLE saying why, the host is the image's, and
// nothing dials out (an SSM endpoint override is never connected to).
func TestOfflineImage(t *testing.T) {
	s := fakeimds.New(t)
	s.V1 = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var dialed atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("image-host\n"), 0o644)
	env := []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + s.URL, "AWS_ENDPOINT_URL_SSM=http://" + l.Addr().String()}
	r := ec2sec(t, env, "scan", "--root", root, "--format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var rep struct {
		Host    map[string]any
		Results []struct{ Check, Probe, Status, Reason string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if rep.Host["instance_id"] != nil || rep.Host["hostname"] != "image-host" {
		t.Errorf("host %v; want the image's hostname and no instance", rep.Host)
	}
	live := 0
	for _, res := range rep.Results {
		if res.Probe == "imds" || res.Probe == "ec2api" || res.Probe == "network" || res.Check == "ssm-endpoints-unreachable" || res.Check == "userdata-secret" {
			live++
			if res.Status != "NOT_AVAILABLE" || !strings.Contains(res.Reason, "offline image") {
				t.Errorf("%s: %s %q; want NOT_AVAILABLE for an offline image", res.Check, res.Status, res.Reason)
			}
		}
	}
	if live < 5 {
		t.Errorf("only %d results of the live checks", live)
	}
	if asked := s.Requested(); len(asked) > 0 {
		t.Errorf("IMDS was asked during an offline image scan: %v", asked)
	}
	if n := dialed.Load(); n > 0 {
		t.Errorf("the SSM endpoint was dialed %d times during an offline image scan", n)
	}
}
