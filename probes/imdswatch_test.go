package probes

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/imdswatch"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

// watchEnv is an Env on EC2 at now whose watcher's window is sum.
func watchEnv(t *testing.T, sum *imdswatch.Summary, now time.Time) *Env {
	env := testEnv(t)
	env.Now = func() time.Time { return now }
	env.Identity = metadata.Identity{Reachable: true}
	env.IMDSWatch = func() (*imdswatch.Summary, error) { return sum, nil }
	return env
}

func TestIMDSWatchNotAvailable(t *testing.T) {
	now := time.Now()
	noWatcher := watchEnv(t, nil, now)
	noWatcher.IMDSWatch = nil
	offEC2 := watchEnv(t, nil, now)
	offEC2.Identity = metadata.Identity{Reason: "not on EC2"}
	offline := watchEnv(t, nil, now)
	offline.Offline, offline.Identity = true, metadata.Identity{}
	for name, env := range map[string]*Env{
		"no watcher":   noWatcher,
		"off EC2":      offEC2,
		"no summary":   watchEnv(t, nil, now),
		"never loaded": watchEnv(t, &imdswatch.Summary{Version: 1, Unavailable: "IMDS watcher not available: load BPF programs: operation not permitted"}, now),
		"offline":      offline,
	} {
		_, err := IMDSWatchProbe{}.Run(context.Background(), env)
		if err == nil {
			t.Errorf("%s: no error, want NOT_AVAILABLE", name)
		}
		if name == "never loaded" && !strings.Contains(err.Error(), "operation not permitted") {
			t.Errorf("%s: %v does not say why", name, err)
		}
	}
}

func TestIMDSWatchPassedStatesWindow(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	sum := &imdswatch.Summary{Version: 1, Running: true, Updated: now,
		Watching: []imdswatch.Segment{{From: now.Add(-(6*24 + 23) * time.Hour), To: now}},
		Callers:  []*imdswatch.Caller{{Key: "k", Identity: imdswatch.Identity{Exe: "/usr/bin/aws", Netns: "host"}, V2: 5, Token: 1, LastSeen: now}}}
	rs, err := IMDSWatchProbe{}.Run(context.Background(), watchEnv(t, sum, now))
	if err != nil {
		t.Fatal(err)
	}
	m := checkIndex(t, rs)
	if r := m["imds-v1-callers"]; r.Status != Passed || r.Reason != "no IMDSv1 call in 6 d 23 h: requiring IMDSv2 will not break this host" {
		t.Errorf("v1 callers: %s %q", r.Status, r.Reason)
	}
	if r := m["imds-container-callers"]; r.Status != Passed || !strings.Contains(r.Reason, "6 d 23 h") {
		t.Errorf("container callers: %s %q", r.Status, r.Reason)
	}
}

func TestIMDSWatchFailedPerCaller(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	ctr := strings.Repeat("c", 64)
	sum := &imdswatch.Summary{Version: 1, Running: true, Updated: now,
		Watching: []imdswatch.Segment{{From: now.Add(-time.Hour), To: now}},
		Callers: []*imdswatch.Caller{
			{Key: "a", Identity: imdswatch.Identity{Pid: 7, Exe: "/usr/bin/curl", User: "app", Netns: "host", Unit: "cron.service",
				Cmdline: "curl -H Authorization:\nAKIAIOSFODNN7EXAMPLE x"}, V1: 3, V1Creds: 1, Creds: 1, LastV1: now, LastSeen: now},
			{Key: "b", Identity: imdswatch.Identity{Pid: 8, Exe: "/usr/bin/python3", Netns: "other", Container: ctr, Runtime: "docker"}, V2: 2, Creds: 2, LastSeen: now},
			{Key: "c", Identity: imdswatch.Identity{Pid: 9, Exe: "/opt/old", Netns: "host"}, V1: 1, LastV1: now.Add(-8 * 24 * time.Hour), LastSeen: now},
		}}
	rs, err := IMDSWatchProbe{}.Run(context.Background(), watchEnv(t, sum, now))
	if err != nil {
		t.Fatal(err)
	}
	var v1, cc []Result
	for _, r := range rs {
		switch r.Check {
		case "imds-v1-callers":
			v1 = append(v1, r)
		case "imds-container-callers":
			cc = append(cc, r)
		}
	}
	if len(v1) != 1 || v1[0].Status != Failed || v1[0].Severity != Critical || v1[0].Key != "a" ||
		!strings.Contains(v1[0].Reason, "/usr/bin/curl (pid 7, user app, unit cron.service)") || v1[0].Evidence["unit"] != "cron.service" {
		t.Errorf("v1 callers: %+v", v1)
	}
	if len(cc) != 1 || cc[0].Status != Failed || cc[0].Severity != High || cc[0].Evidence["container"] != ctr ||
		!strings.Contains(cc[0].Reason, "docker container cccccccccccc") {
		t.Errorf("container callers: %+v", cc)
	}

	// Correlation: v1 enabled names the callers; v2 required (401) calls them broken.
	enabled := NewResult("imds-v1-enabled", Failed, "", "IMDS answered").With("http_status", http.StatusOK)
	enabled.Remediation.Text = "Require IMDSv2."
	out := Correlate(append([]Result{enabled}, rs...))
	if !strings.Contains(out[0].Remediation.Text, "would break 1 IMDSv1 caller(s)") || !strings.Contains(out[0].Remediation.Text, "/usr/bin/curl (pid 7, unit cron.service)") {
		t.Errorf("remediation with callers: %q", out[0].Remediation.Text)
	}
	required := NewResult("imds-v1-enabled", Passed, "", "401").With("http_status", http.StatusUnauthorized)
	out = Correlate(append([]Result{required}, rs...))
	for _, r := range out {
		if r.Check == "imds-v1-callers" && (!strings.Contains(r.Reason, "fail with 401") || r.Evidence["broken"] != true) {
			t.Errorf("v1 caller on a v2-only host: %q", r.Reason)
		}
	}
}

func TestIMDSWatchRequireNow(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		watched time.Duration
		want    bool
	}{{7 * 24 * time.Hour, true}, {6 * 24 * time.Hour, false}} {
		sum := &imdswatch.Summary{Version: 1, Running: true, Updated: now, Watching: []imdswatch.Segment{{From: now.Add(-tc.watched), To: now}}}
		rs, err := IMDSWatchProbe{}.Run(context.Background(), watchEnv(t, sum, now))
		if err != nil {
			t.Fatal(err)
		}
		enabled := NewResult("imds-v1-enabled", Failed, "", "IMDS answered")
		enabled.Remediation.Text = "Require IMDSv2."
		out := Correlate(append([]Result{enabled}, rs...))
		if got := strings.Contains(out[0].Remediation.Text, "IMDSv2 can be required now"); got != tc.want {
			t.Errorf("watched %s: remediation %q, want 'required now' %v", tc.watched, out[0].Remediation.Text, tc.want)
		}
	}
}

// TestIMDSWatchRedactsCmdline: a secret the daemon's cheap pass let through (a key pair as
// plain arguments) is redacted by the secret detector before it goes into a result.
func TestIMDSWatchRedactsCmdline(t *testing.T) {
	id, secret := testenv.FakeAWSKey(t, "AKIA")
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	sum := &imdswatch.Summary{Version: 1, Running: true, Updated: now,
		Watching: []imdswatch.Segment{{From: now.Add(-time.Hour), To: now}},
		Callers: []*imdswatch.Caller{{Key: "a", Identity: imdswatch.Identity{Pid: 7, Exe: "/usr/bin/tool", Netns: "host",
			Cmdline: "/usr/bin/tool --id " + id + " --key " + secret + " --region us-east-1"}, V1: 1, LastV1: now, LastSeen: now}}}
	env := watchEnv(t, sum, now)
	det, err := secrets.New()
	if err != nil {
		t.Fatal(err)
	}
	env.Secrets, env.FingerprintKey = det, []byte("0123456789abcdef0123456789abcdef")
	rs, err := IMDSWatchProbe{}.Run(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rs)
	if strings.Contains(string(b), secret) || strings.Contains(string(b), id) {
		t.Fatalf("a secret of the command line reached the results: %s", b)
	}
	if !strings.Contains(string(b), "--region us-east-1") || !strings.Contains(string(b), imdswatch.Redacted) {
		t.Fatalf("cmdline not kept with its secrets redacted: %s", b)
	}
}
