// Package testenv keeps every test of ec2sec on loopback: it points IMDS and every AWS
// endpoint at closed loopback ports (or at the fakes a test starts), gives the SDK fake
// credentials and no shared config, and finds the Go-built peers (the IMDS emulator) that
// `make test` installs into tools/bin.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Closed is a loopback address nothing listens on: connections are refused at once.
const Closed = "http://127.0.0.1:1"

// Main sets the safe environment for a whole test binary, then runs its tests. Call it from
// every package's TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	for k, v := range Safe() {
		os.Setenv(k, v)
	}
	os.Unsetenv("AWS_EC2_METADATA_DISABLED")
	os.Unsetenv("AWS_PROFILE")
	os.Exit(m.Run())
}

// Safe returns the environment that keeps the agent and the SDK on loopback.
func Safe() map[string]string {
	empty := filepath.Join(os.TempDir(), "ec2sec-testenv-empty")
	os.WriteFile(empty, nil, 0o600)
	env := map[string]string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": Closed,
		"AWS_ENDPOINT_URL":                  Closed,
		"AWS_REGION":                        "us-east-1",
		"AWS_ACCESS_KEY_ID":                 "test",
		"AWS_SECRET_ACCESS_KEY":             "test",
		"AWS_CONFIG_FILE":                   empty,
		"AWS_SHARED_CREDENTIALS_FILE":       empty,
		"AWS_RETRY_MODE":                    "standard",
		"AWS_MAX_ATTEMPTS":                  "2",
	}
	for _, svc := range []string{"CLOUDWATCH_LOGS", "SECURITYHUB", "EC2", "STS", "SSM", "SSMMESSAGES", "EC2MESSAGES"} {
		env["AWS_ENDPOINT_URL_"+svc] = Closed
	}
	return env
}

// Environ returns os.Environ() with the safe variables overriding, for a child process such
// as the ec2sec binary; extra "K=V" pairs override both.
func Environ(extra ...string) []string {
	out := []string{}
	safe := Safe()
	for _, kv := range os.Environ() {
		k, _, _ := cut(kv)
		if _, ok := safe[k]; ok || k == "AWS_EC2_METADATA_DISABLED" || k == "AWS_PROFILE" {
			continue
		}
		out = append(out, kv)
	}
	for k, v := range safe {
		out = append(out, k+"="+v)
	}
	return append(out, extra...)
}

func cut(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// RepoRoot returns the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Tool returns the path of a peer program, from tools/bin (where `make tools` installs it) or
// PATH. When it is missing the test skips with a message, except under CI=true, where a
// missing peer fails the test: CI must have installed it.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p := filepath.Join(RepoRoot(), "tools", "bin", name); isExec(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	Missing(t, fmt.Sprintf("%s not found in tools/bin or PATH (run make tools)", name))
	return ""
}

// Missing skips the test, or fails it under CI=true.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and a test peer is missing: %s", why)
	}
	t.Skip(why)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// System marks a system test: one that builds the binary, starts real peers or many agents,
// or attacks the agent as a hostile host, user or endpoint would (hostile, fleet, chaos,
// no-leak, self-protection, kill). `go test -short` skips them, so the unit tests of a
// package run in seconds; `make test` runs everything.
func System(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("system test; run without -short")
	}
}
