package probes

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
)

func runIMDS(t *testing.T, env *Env) map[string]Result {
	t.Helper()
	rs, err := IMDSProbe{}.Run(context.Background(), env)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return checkIndex(t, rs)
}

func TestIMDSv1(t *testing.T) {
	for _, tc := range []struct {
		name   string
		set    func(*fakeimds.Server)
		status Status
		reason string
	}{
		{"v1 allowed", func(s *fakeimds.Server) { s.V1 = true }, Failed, "without a session token"},
		{"v2 required", func(s *fakeimds.Server) {}, Passed, "401"},
		{"endpoint off", func(s *fakeimds.Server) { s.Off = true }, Passed, "turned off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fakeimds.New(t)
			// Identity is looked up before the endpoint is turned off, as on a host where
			// someone disabled IMDS between two scans; the v1 check must still say why.
			env := testEnv(t, withIMDS(s.URL))
			s.Set(tc.set)
			r := runIMDS(t, env)["imds-v1-enabled"]
			if r.Status != tc.status || !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("got %s %q, want %s containing %q", r.Status, r.Reason, tc.status, tc.reason)
			}
		})
	}
}

func TestIMDSEndpointOffFromTheStart(t *testing.T) {
	s := fakeimds.New(t)
	s.Off = true
	r := runIMDS(t, testEnv(t, withIMDS(s.URL)))
	if r["imds-v1-enabled"].Status != Passed || r["imds-hop-limit"].Status != Passed {
		t.Errorf("endpoint off: v1 %s, hop %s; want both PASSED", r["imds-v1-enabled"].Status, r["imds-hop-limit"].Status)
	}
	if r["imds-no-instance-profile"].Status != NotAvailable {
		t.Errorf("endpoint off: profile %s, want NOT_AVAILABLE", r["imds-no-instance-profile"].Status)
	}
}

func TestIMDSHopLimitOnTheWire(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("IP_MINTTL is Linux-only")
	}
	for _, n := range []int{1, 2, 3, 64} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := fakeimds.New(t)
			s.HopLimit = n
			r := runIMDS(t, testEnv(t, withIMDS(s.URL)))["imds-hop-limit"]
			if got := r.Evidence["hop_limit"]; got != n {
				t.Fatalf("measured hop limit %v, want %d (%s: %s)", got, n, r.Status, r.Reason)
			}
			want := Passed
			if n > 1 {
				want = Failed
			}
			if r.Status != want {
				t.Errorf("status %s, want %s", r.Status, want)
			}
			if r.Status == Failed && r.Severity != SeverityUnset {
				t.Errorf("no container runtime, yet severity raised to %s", r.Severity)
			}
		})
	}
}

func TestIMDSHopLimitRaisedByContainerRuntime(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("IP_MINTTL is Linux-only")
	}
	s := fakeimds.New(t)
	s.HopLimit = 2

	// A docker socket in the image.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "run"), 0o755)
	sock := filepath.Join(root, "run", "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix socket: %v", err)
	}
	defer l.Close()
	r := runIMDS(t, testEnv(t, onRoot(root), withIMDS(s.URL)))["imds-hop-limit"]
	if r.Status != Failed || r.Severity != High || !strings.Contains(r.Reason, "docker") {
		t.Errorf("docker socket: got %s %s %q, want FAILED HIGH naming docker", r.Status, r.Severity, r.Reason)
	}

	// A containerd process in procfs, and a regular file named like a socket (not a runtime).
	root2, proc := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(root2, "run"), 0o755)
	os.WriteFile(filepath.Join(root2, "run", "docker.sock"), nil, 0o644)
	os.MkdirAll(filepath.Join(proc, "812"), 0o755)
	os.WriteFile(filepath.Join(proc, "812", "comm"), []byte("containerd\n"), 0o644)
	env := testEnv(t, onRoot(root2), withIMDS(s.URL))
	env.Proc = proc
	r = runIMDS(t, env)["imds-hop-limit"]
	rts, _ := r.Evidence["container_runtimes"].([]string)
	if r.Severity != High || strings.Join(rts, ",") != "containerd" {
		t.Errorf("containerd process: severity %s runtimes %v, want HIGH [containerd]", r.Severity, rts)
	}
}

func TestIMDSHopLimitOneIsFast(t *testing.T) {
	// Not a timing assertion on the wall clock of the whole test (benchmarks own those):
	// the search must decide limit 1 with at most two MINTTL attempts.
	if runtime.GOOS != "linux" {
		t.Skip("IP_MINTTL is Linux-only")
	}
	s := fakeimds.New(t)
	runIMDS(t, testEnv(t, withIMDS(s.URL)))
	puts := 0
	for _, r := range s.Requested() {
		if r == "PUT /latest/api/token" {
			puts++
		}
	}
	// identity token + baseline + up to two dropped attempts (which the server still sees).
	if puts > 4 {
		t.Errorf("%d token PUTs to decide hop limit 1, want at most 4: %v", puts, s.Requested())
	}
}

func TestIMDSInstanceProfile(t *testing.T) {
	s := fakeimds.New(t)
	r := runIMDS(t, testEnv(t, withIMDS(s.URL)))["imds-no-instance-profile"]
	if r.Status != Passed || r.Evidence["instance_profile_arn"] != "arn:aws:iam::123456789012:instance-profile/web" {
		t.Errorf("with profile: %s %v", r.Status, r.Evidence)
	}
	// Under the lock: a dropped hop-limit attempt of the first run may still be served.
	s.Set(func(s *fakeimds.Server) { delete(s.Paths, "meta-data/iam/info") })
	r = runIMDS(t, testEnv(t, withIMDS(s.URL)))["imds-no-instance-profile"]
	if r.Status != Failed {
		t.Errorf("without profile: %s %q, want FAILED", r.Status, r.Reason)
	}
	for _, req := range s.Requested() {
		if strings.Contains(req, "security-credentials") {
			t.Errorf("the probe asked for credentials: %s", req)
		}
	}
}

func TestIMDSNotOnEC2(t *testing.T) {
	start := time.Now()
	env := testEnv(t, withIMDS("http://127.0.0.1:1"))
	_, err := IMDSProbe{}.Run(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "not on EC2") {
		t.Fatalf("closed port: err %v, want 'not on EC2'", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("off EC2 took %s", d) // generous: a hang, not a benchmark
	}
}

func TestIMDSDisabled(t *testing.T) {
	s := fakeimds.New(t)
	env := testEnv(t, withEnviron(map[string]string{"AWS_EC2_METADATA_DISABLED": "true"}), withIMDS(s.URL))
	_, err := IMDSProbe{}.Run(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "AWS_EC2_METADATA_DISABLED") {
		t.Fatalf("err %v, want disabled", err)
	}
	if len(s.Requested()) != 0 {
		t.Errorf("IMDS disabled, yet %d requests were sent: %v", len(s.Requested()), s.Requested())
	}
}

// Bad IMDS answers get a clear answer, never a crash or a hang.
func TestIMDSFaults(t *testing.T) {
	for _, f := range []fakeimds.Fault{fakeimds.Hang, fakeimds.Garbage, fakeimds.ServerError, fakeimds.CloseMid, fakeimds.Huge} {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			s := fakeimds.New(t)
			s.V1 = true
			env := testEnv(t, withIMDS(s.URL))
			s.Set(func(s *fakeimds.Server) { s.Fault = f })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			rs, err := IMDSProbe{}.Run(ctx, env)
			if ctx.Err() != nil {
				t.Fatal("the probe hung")
			}
			if err != nil {
				return // a clear error: the scan turns it into NOT_AVAILABLE
			}
			for _, r := range rs {
				if r.Status == Passed && r.Check != "imds-v1-enabled" {
					t.Errorf("%s PASSED against a broken IMDS (%q)", r.Check, r.Reason)
				}
				if r.Reason == "" {
					t.Errorf("%s without a reason", r.Check)
				}
			}
		})
	}
}

func TestIMDSIdentityFaults(t *testing.T) {
	for _, f := range []fakeimds.Fault{fakeimds.Hang, fakeimds.Garbage, fakeimds.ServerError, fakeimds.CloseMid, fakeimds.Huge} {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			s := fakeimds.New(t)
			s.Fault = f
			env := testEnv(t, withIMDS(s.URL))
			if env.Identity.OnEC2() || env.Identity.Reason == "" {
				t.Errorf("identity from a broken IMDS: %+v", env.Identity)
			}
		})
	}
}

func TestIMDSHopLimitIPv6(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("IPV6_MINHOPCOUNT is Linux-only")
	}
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	for _, n := range []int{1, 3} {
		s := fakeimds.NewOn(t, l)
		s.HopLimit = n
		r := runIMDS(t, testEnv(t, withIMDS(s.URL)))["imds-hop-limit"]
		if r.Evidence["hop_limit"] != n {
			t.Errorf("IPv6 endpoint %s: hop limit %v, want %d (%s)", s.URL, r.Evidence["hop_limit"], n, r.Reason)
		}
		l, err = net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
}
