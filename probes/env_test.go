package probes

import (
	"context"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

// testNow is the fixed clock of every test Env; log fixtures are dated relative to it.
var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// envOption changes one thing of the Env testEnv builds.
type envOption func(t testing.TB, e *Env)

// testEnv is the Env a scan gives a probe, for tests. By default it reaches nothing but
// loopback: an empty temp root, no procfs, IMDS at a closed port (the identity says not on
// EC2), the fixed clock testNow, a discarding logger, a plain dialer, DNS that fails locally,
// an empty environment, no secrets detector. Options change that, one thing each; a test
// that needs an odd field (an EC2 client, a watcher) sets it on the result.
func testEnv(t testing.TB, opts ...envOption) *Env {
	t.Helper()
	noEnv := func(string) string { return "" }
	e := &Env{
		IMDS:     metadata.New(metadata.Options{Endpoint: testenv.Closed, Getenv: noEnv}),
		Identity: metadata.Identity{Reason: "not on EC2: test without IMDS"},
		Now:      func() time.Time { return testNow },
		Log:      slog.New(slog.DiscardHandler),
		Dial:     (&net.Dialer{}).DialContext,
		Resolver: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Net: "udp", Err: os.ErrClosed}
		}},
		DialTimeout: 2 * time.Second, HTTPTimeout: time.Second,
		Getenv: noEnv,
	}
	for _, o := range opts {
		o(t, e)
	}
	if e.Root == "" {
		e.Root = t.TempDir()
	}
	fsys, err := hostfs.New(e.Root)
	if err != nil {
		t.Fatal(err)
	}
	e.FS = fsys
	return e
}

// onRoot scans root (a fixture tree) instead of an empty temp dir.
func onRoot(root string) envOption {
	return func(_ testing.TB, e *Env) { e.Root = root }
}

// withProc reads processes from proc (a procfstest tree or "/proc"); "" = none.
func withProc(proc string) envOption {
	return func(_ testing.TB, e *Env) { e.Proc = proc }
}

// withIMDS puts IMDS at endpoint (a fakeimds URL) and looks the identity up, as the scan does
// before it runs the probes. The client reads the Env's environment (withEnviron first).
func withIMDS(endpoint string) envOption {
	return func(_ testing.TB, e *Env) {
		e.IMDS = metadata.New(metadata.Options{Endpoint: endpoint, Timeout: time.Second, Getenv: e.Getenv})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Identity = e.IMDS.Identity(ctx)
	}
}

// withSecrets gives the probe the secrets detector and a fingerprint key.
func withSecrets() envOption {
	return func(t testing.TB, e *Env) {
		e.Secrets = testDetector(t)
		e.FingerprintKey = []byte("test-fingerprint-key")
	}
}

// withEnviron is the agent's environment: vars, nothing else.
func withEnviron(vars map[string]string) envOption {
	return func(_ testing.TB, e *Env) { e.Getenv = func(k string) string { return vars[k] } }
}

var (
	detOnce sync.Once
	det     *secrets.Detector
	detErr  error
)

// testDetector is built once per test binary, as the agent builds it once per process.
func testDetector(t testing.TB) *secrets.Detector {
	t.Helper()
	detOnce.Do(func() { det, detErr = secrets.New() })
	if detErr != nil {
		t.Fatal(detErr)
	}
	return det
}

// checkIndex indexes results by check id, failing on duplicates (for probes that report one
// result per check).
func checkIndex(t *testing.T, rs []Result) map[string]Result {
	t.Helper()
	m := map[string]Result{}
	for _, r := range rs {
		if _, dup := m[r.Check]; dup {
			t.Fatalf("two results for %s", r.Check)
		}
		m[r.Check] = r
	}
	return m
}
