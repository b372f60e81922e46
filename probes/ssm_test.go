package probes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/procfs/procfstest"
)

const (
	ssmDebBinary = "/usr/bin/amazon-ssm-agent"
	ssmDebWants  = "/etc/systemd/system/multi-user.target.wants/amazon-ssm-agent.service"
	ssmSnapWants = "/etc/systemd/system/multi-user.target.wants/snap.amazon-ssm-agent.amazon-ssm-agent.service"
)

func ssmAgentProc(exe string) procfstest.Proc {
	// comm is cut to 15 characters by the kernel.
	return procfstest.Proc{PID: 1200, Comm: "amazon-ssm-agen", Exe: exe, Cmdline: []string{exe}}
}

func TestSSMAgentState(t *testing.T) {
	deb := map[string]string{ssmDebBinary: "ELF", ssmDebWants: "->/lib/systemd/system/amazon-ssm-agent.service"}
	snap := map[string]string{
		"/snap/amazon-ssm-agent/current":               "->9881",
		"/snap/amazon-ssm-agent/9881/amazon-ssm-agent": "ELF",
		"/snap/amazon-ssm-agent/9881/ssm-agent-worker": "ELF",
		ssmSnapWants: "->/etc/systemd/system/snap.amazon-ssm-agent.amazon-ssm-agent.service",
		"/etc/systemd/system/snap.amazon-ssm-agent.amazon-ssm-agent.service": "[Unit]\n",
	}
	other := procfstest.Proc{PID: 1, Comm: "systemd", Exe: "/usr/lib/systemd/systemd"}
	cases := []struct {
		name            string
		files           map[string]string
		procs           []procfstest.Proc // nil: no procfs
		missing, notRun Status
		reasonHas       string
		installedAt     string
	}{
		{"deb: running and enabled", deb, []procfstest.Proc{other, ssmAgentProc(ssmDebBinary)}, Passed, Passed, "running (pid 1200) and enabled", ssmDebBinary},
		{"snap: running and enabled", snap, []procfstest.Proc{other, ssmAgentProc("/snap/amazon-ssm-agent/9881/amazon-ssm-agent")}, Passed, Passed, "running (pid 1200)", "/snap/amazon-ssm-agent/current/amazon-ssm-agent"},
		{"found by exe when comm differs", deb, []procfstest.Proc{{PID: 77, Comm: "x", Exe: ssmDebBinary + " (deleted)"}}, Passed, Passed, "running (pid 77)", ssmDebBinary},
		{"installed, not running", deb, []procfstest.Proc{other}, Passed, Failed, "installed but not running", ssmDebBinary},
		{"running, not enabled", with(deb, ssmDebWants, ""), []procfstest.Proc{ssmAgentProc(ssmDebBinary)}, Passed, Failed, "not enabled at boot", ssmDebBinary},
		{"neither", with(deb, ssmDebWants, ""), []procfstest.Proc{other}, Passed, Failed, "not running and not enabled at boot", ssmDebBinary},
		{"offline image, enabled", deb, nil, Passed, Passed, "processes are not visible", ssmDebBinary},
		{"offline image, not enabled", with(deb, ssmDebWants, ""), nil, Passed, Failed, "not enabled at boot", ssmDebBinary},
		{"not installed", map[string]string{"/etc/hostname": "h"}, []procfstest.Proc{other}, Failed, NotAvailable, "not installed", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proc := ""
			if c.procs != nil {
				proc = procfstest.Build(t, t.TempDir(), c.procs, nil)
			}
			rs, err := SSMProbe{}.Run(context.Background(), testEnv(t, onRoot(fixtureRoot(t, c.files)), withProc(proc)))
			if err != nil {
				t.Fatal(err)
			}
			missing, notRun := one(t, rs, "ssm-agent-missing"), one(t, rs, "ssm-agent-not-running")
			if missing.Status != c.missing || notRun.Status != c.notRun {
				t.Fatalf("missing %s (%s), not-running %s (%s); want %s, %s", missing.Status, missing.Reason, notRun.Status, notRun.Reason, c.missing, c.notRun)
			}
			if !strings.Contains(notRun.Reason, c.reasonHas) {
				t.Errorf("reason %q lacks %q", notRun.Reason, c.reasonHas)
			}
			if c.installedAt != "" && missing.Resource != c.installedAt {
				t.Errorf("installed at %q, want %q", missing.Resource, c.installedAt)
			}
		})
	}
}

func TestSSMAgentLogs(t *testing.T) {
	logDir := "/var/log/amazon/ssm/"
	base := map[string]string{ssmDebBinary: "ELF"}
	t.Run("recent errors by kind", func(t *testing.T) {
		files := with(base,
			logDir+"amazon-ssm-agent.log", testdataFile(t, "ssm/amazon-ssm-agent.log"),
			logDir+"errors.log", testdataFile(t, "ssm/errors.log"))
		rs, _ := SSMProbe{}.Run(context.Background(), testEnv(t, onRoot(fixtureRoot(t, files))))
		r := one(t, rs, "ssm-agent-unhealthy")
		if r.Status != Failed {
			t.Fatalf("status %s (%s)", r.Status, r.Reason)
		}
		errs := r.Evidence["errors"].(map[string]any)
		want := map[string]int{"access_denied": 2, "health_ping": 1, "credentials": 1}
		if len(errs) != len(want) {
			t.Errorf("error kinds %v, want %v", errs, want)
		}
		for k, n := range want {
			e, ok := errs[k].(ssmLogErrors)
			if !ok || e.Count != n {
				t.Errorf("%s: %+v, want count %d", k, errs[k], n)
			}
		}
		if e := errs["access_denied"].(ssmLogErrors); e.LastSeen != "2026-11-28T07:20:00Z" || e.File != logDir+"errors.log" {
			t.Errorf("access denied last seen %+v", e)
		}
		if r.Evidence["other_errors"] != 1 || r.Evidence["version"] != "3.3.1142.0" {
			t.Errorf("evidence %v", r.Evidence)
		}
		if !strings.Contains(r.Reason, "2 access denied, 1 credentials, 1 health ping") {
			t.Errorf("reason %q", r.Reason)
		}
		if strings.Contains(evidenceJSON(t, rs), "123456789012") {
			t.Error("log lines (account ids, role names) must not be copied into evidence")
		}
	})
	t.Run("healthy", func(t *testing.T) {
		files := with(base, logDir+"amazon-ssm-agent.log", testdataFile(t, "ssm/healthy.log"))
		rs, _ := SSMProbe{}.Run(context.Background(), testEnv(t, onRoot(fixtureRoot(t, files))))
		r := one(t, rs, "ssm-agent-unhealthy")
		if r.Status != Passed || r.Evidence["version"] != "3.3.1142.0" || r.Evidence["other_errors"] != 1 {
			t.Errorf("%s (%s) %v", r.Status, r.Reason, r.Evidence)
		}
	})
	t.Run("too old", func(t *testing.T) {
		files := with(base, logDir+"amazon-ssm-agent.log", testdataFile(t, "ssm/old-agent.log"))
		rs, _ := SSMProbe{}.Run(context.Background(), testEnv(t, onRoot(fixtureRoot(t, files))))
		r := one(t, rs, "ssm-agent-unhealthy")
		if r.Status != Failed || !strings.Contains(r.Reason, "2.3.1319.0 is older than "+SSMAgentMinVersion) {
			t.Errorf("%s (%s)", r.Status, r.Reason)
		}
	})
	t.Run("no logs", func(t *testing.T) {
		rs, _ := SSMProbe{}.Run(context.Background(), testEnv(t, onRoot(fixtureRoot(t, base))))
		if r := one(t, rs, "ssm-agent-unhealthy"); r.Status != NotAvailable || !strings.Contains(r.Reason, "no SSM Agent log") {
			t.Errorf("%s (%s)", r.Status, r.Reason)
		}
	})
	t.Run("a log is a FIFO", func(t *testing.T) {
		root := fixtureRoot(t, base)
		p := filepath.Join(root, "var/log/amazon/ssm/amazon-ssm-agent.log")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := mkfifo(p); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		rs, _ := SSMProbe{}.Run(context.Background(), testEnv(t, onRoot(root)))
		if r := one(t, rs, "ssm-agent-unhealthy"); r.Status != NotAvailable {
			t.Errorf("%s (%s)", r.Status, r.Reason)
		}
	})
	// Only the last MiB is read: an error before it is out of sight, one after it counts.
	for _, errorFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("tail bound, error first %v", errorFirst), func(t *testing.T) {
			errLine := "2026-11-28 11:00:00 ERROR [HealthCheck] health ping failed\n"
			var b strings.Builder
			if errorFirst {
				b.WriteString(errLine)
			}
			for b.Len() < ssmLogTail+ssmLogTail/2 {
				b.WriteString("2026-11-28 11:00:01 INFO [ssm-agent-worker] [MessageService] nothing to report, just a line of padding\n")
			}
			if !errorFirst {
				b.WriteString(errLine)
			}
			rs, _ := SSMProbe{}.Run(context.Background(), testEnv(t, onRoot(fixtureRoot(t, with(base, logDir+"amazon-ssm-agent.log", b.String())))))
			r := one(t, rs, "ssm-agent-unhealthy")
			if want := map[bool]Status{true: Passed, false: Failed}[errorFirst]; r.Status != want {
				t.Errorf("%s (%s), want %s", r.Status, r.Reason, want)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"3.2.0.0", "3.2.0.0", 0}, {"3.10.1", "3.2.0.0", 1}, {"2.3.1319.0", "3.2.0.0", -1}, {"3.2", "3.2.0.0", 0}, {"3.2.582.0", "3.2.0.0", 1}} {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%q, %q) = %d", c.a, c.b, got)
		}
	}
}

// loopbackListener accepts and closes connections until the test ends; it returns "host:port".
func loopbackListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

// fakeDNS is a loopback DNS server: A queries for names in answers get 127.0.0.1, other A
// queries NXDOMAIN, everything else an empty answer. It returns a resolver that only ever
// talks to it.
func fakeDNS(t *testing.T, answers []string) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n], answers); resp != nil {
				pc.WriteTo(resp, addr)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if network != "udp" {
			return nil, fmt.Errorf("fake DNS speaks udp only, not %s", network)
		}
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

func dnsAnswer(q []byte, answers []string) []byte {
	if len(q) < 12 {
		return nil
	}
	// Question: labels up to a zero byte, then type and class.
	i := 12
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	question := q[12 : i+5]
	name := strings.ToLower(strings.Join(labels, "."))
	known := slices.Contains(answers, name)
	resp := make([]byte, 12, 64)
	copy(resp, q[:2])
	flags := uint16(0x8180) // response, recursion desired and available
	if !known {
		flags |= 3 // NXDOMAIN
	}
	binary.BigEndian.PutUint16(resp[2:], flags)
	binary.BigEndian.PutUint16(resp[4:], 1)
	resp = append(resp, question...)
	if known && qtype == 1 {
		binary.BigEndian.PutUint16(resp[6:], 1)
		resp = append(resp, 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
	}
	return resp
}

func TestSSMReachability(t *testing.T) {
	open := loopbackListener(t)
	closed := testenv.Closed // a loopback port nothing listens on
	type want struct {
		status   Status
		resource string
		has      string // in reason
	}
	run := func(t *testing.T, env *Env) map[string]Result {
		rs, err := SSMProbe{}.Run(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Result{}
		for _, r := range byCheck(rs, "ssm-endpoints-unreachable") {
			got[r.Evidence["service"].(string)] = r
		}
		if len(got) != 3 {
			t.Fatalf("want one result per endpoint, got %v", got)
		}
		return got
	}
	check := func(t *testing.T, got map[string]Result, wants map[string]want) {
		t.Helper()
		for svc, w := range wants {
			r := got[svc]
			if r.Status != w.status || r.Resource != svc+" endpoint "+w.resource || !strings.Contains(r.Reason, w.has) {
				t.Errorf("%s: %s %s (%s); want %s %s (%q)", svc, r.Status, r.Resource, r.Reason, w.status, w.resource, w.has)
			}
		}
	}

	t.Run("environment overrides", func(t *testing.T) {
		env := testEnv(t, withEnviron(map[string]string{
			"AWS_ENDPOINT_URL_SSM":         "https://" + open + "/",
			"AWS_ENDPOINT_URL_SSMMESSAGES": closed,
			"AWS_ENDPOINT_URL":             open,
		}))
		got := run(t, env)
		check(t, got, map[string]want{
			"ssm":         {Passed, open, "reached"},
			"ssmmessages": {Failed, "127.0.0.1:1", "TCP connect failed"},
			"ec2messages": {Passed, open, "reached"},
		})
		if got["ec2messages"].Evidence["source"] != "AWS_ENDPOINT_URL" || got["ssm"].Evidence["source"] != "AWS_ENDPOINT_URL_SSM" {
			t.Errorf("sources: %v, %v", got["ec2messages"].Evidence, got["ssm"].Evidence)
		}
	})

	t.Run("regional names through DNS", func(t *testing.T) {
		env := testEnv(t)
		env.Identity = metadata.Identity{InstanceID: "i-0123456789abcdef0", Region: "eu-west-1", Domain: "amazonaws.com", Reachable: true}
		env.Resolver = fakeDNS(t, []string{"ssm.eu-west-1.amazonaws.com", "ec2messages.eu-west-1.amazonaws.com"})
		// Port 443 of the resolved address is where the loopback listener stands in.
		env.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != "127.0.0.1:443" {
				return nil, fmt.Errorf("unexpected dial to %s", addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, open)
		}
		got := run(t, env)
		check(t, got, map[string]want{
			"ssm":         {Passed, "ssm.eu-west-1.amazonaws.com:443", "reached (TCP 127.0.0.1:443)"},
			"ssmmessages": {Failed, "ssmmessages.eu-west-1.amazonaws.com:443", "DNS lookup failed"},
			"ec2messages": {Passed, "ec2messages.eu-west-1.amazonaws.com:443", "reached"},
		})
		if a := got["ssm"].Evidence["addresses"].([]string); !slices.Equal(a, []string{"127.0.0.1"}) {
			t.Errorf("addresses %v", a)
		}
	})

	t.Run("partition domain", func(t *testing.T) {
		env := testEnv(t)
		env.Identity = metadata.Identity{Region: "cn-north-1", Domain: "amazonaws.com.cn", Reachable: true}
		got := run(t, env) // testEnv's resolver fails locally: every lookup fails
		check(t, got, map[string]want{
			"ssm":         {Failed, "ssm.cn-north-1.amazonaws.com.cn:443", "DNS lookup failed"},
			"ssmmessages": {Failed, "ssmmessages.cn-north-1.amazonaws.com.cn:443", "DNS lookup failed"},
			"ec2messages": {Failed, "ec2messages.cn-north-1.amazonaws.com.cn:443", "DNS lookup failed"},
		})
	})

	// A hostile IMDS names the domain (or a region with dots in it): no name under it is
	// resolved, nothing is dialled, and the check says why.
	t.Run("domain from IMDS not an AWS partition's", func(t *testing.T) {
		for _, id := range []metadata.Identity{
			{Region: "eu-west-1", Domain: "attacker.example", Reachable: true},
			{Region: "eu-west-1", Domain: "amazonaws.com.attacker.example", Reachable: true},
			{Region: "eu-west-1.attacker.example", Domain: "amazonaws.com", Reachable: true},
			{Region: "eu-west-1", Domain: "amazonaws.com.", Reachable: true},
		} {
			env := testEnv(t)
			env.Identity = id
			var asked []string
			var mu sync.Mutex
			env.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				mu.Lock()
				asked = append(asked, addr)
				mu.Unlock()
				return nil, errors.New("no DNS here")
			}}
			env.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				t.Errorf("%+v: dialled %s", id, addr)
				return nil, errors.New("no")
			}
			for svc, r := range run(t, env) {
				if r.Status != NotAvailable || !strings.Contains(r.Reason, "AWS") {
					t.Errorf("%+v: %s: %s (%s)", id, svc, r.Status, r.Reason)
				}
			}
			if len(asked) > 0 {
				t.Errorf("%+v: resolved %v", id, asked)
			}
		}
	})

	t.Run("the agent's own endpoint config", func(t *testing.T) {
		cfg := strings.Replace(testdataFile(t, "ssm/amazon-ssm-agent.json"), "MGS_ENDPOINT", open, 1)
		env := testEnv(t, onRoot(fixtureRoot(t, map[string]string{"/etc/amazon/ssm/amazon-ssm-agent.json": cfg})))
		env.Identity = metadata.Identity{Region: "eu-west-1", Domain: "amazonaws.com", Reachable: true}
		got := run(t, env)
		check(t, got, map[string]want{
			"ssm":         {Failed, "ssm.eu-west-1.amazonaws.com:443", "DNS lookup failed"},
			"ssmmessages": {Passed, open, "reached"},
		})
		if s := got["ssmmessages"].Evidence["source"]; s != "amazon-ssm-agent.json Mgs.Endpoint" {
			t.Errorf("source %v", s)
		}
	})

	t.Run("no injected resolver: no network", func(t *testing.T) {
		env := testEnv(t)
		env.Identity = metadata.Identity{Region: "eu-west-1", Domain: "amazonaws.com", Reachable: true}
		env.Resolver = nil
		for svc, r := range run(t, env) {
			if r.Status != NotAvailable {
				t.Errorf("%s: %s (%s)", svc, r.Status, r.Reason)
			}
		}
	})

	t.Run("off EC2", func(t *testing.T) {
		env := testEnv(t)
		env.Identity = metadata.Identity{Reason: "not on EC2: IMDS did not answer"}
		for svc, r := range run(t, env) {
			if r.Status != NotAvailable || !strings.Contains(r.Reason, "not on EC2: IMDS did not answer") {
				t.Errorf("%s: %s (%s)", svc, r.Status, r.Reason)
			}
		}
	})

	t.Run("a silent endpoint is bounded by the dial timeout", func(t *testing.T) {
		env := testEnv(t, withEnviron(map[string]string{"AWS_ENDPOINT_URL": "https://192.0.2.1"}))
		env.DialTimeout = 100 * time.Millisecond
		env.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			<-ctx.Done() // a black-holed SYN: only the deadline ends it
			return nil, ctx.Err()
		}
		for svc, r := range run(t, env) {
			if r.Status != Failed || r.Evidence["stage"] != "TCP connect" || !strings.Contains(r.Reason, "deadline exceeded") {
				t.Errorf("%s: %s (%s)", svc, r.Status, r.Reason)
			}
		}
	})
}

func TestLiveWindowsRoot(t *testing.T) {
	env := testEnv(t, withEnviron(map[string]string{"SystemDrive": "D:"}))
	for root, want := range map[string]bool{"/": true, `D:\`: true, "d:": true, "D:/": true, `C:\`: false, `E:\mnt\image`: false} {
		env.Root = root
		if got := liveWindowsRoot(env); got != want {
			t.Errorf("liveWindowsRoot(%q) = %v", root, got)
		}
	}
}

// TestSSMWindowsOfflineImage runs the Windows code path on a mounted image: the binary is
// found under the root, and the service manager (which knows only the live system) is not
// asked, so running and enabled are NOT_AVAILABLE with the reason.
func TestSSMWindowsOfflineImage(t *testing.T) {
	env := testEnv(t, onRoot(fixtureRoot(t, map[string]string{"/Program Files/Amazon/SSM/amazon-ssm-agent.exe": "MZ"})), withEnviron(map[string]string{"SystemDrive": "C:"}))
	st := ssmLocalWindows(env)
	if m := ssmMissing(st); m.Status != Passed || m.Resource != "/Program Files/Amazon/SSM/amazon-ssm-agent.exe" {
		t.Errorf("missing: %s %s", m.Status, m.Resource)
	}
	if r := ssmNotRunning(st); r.Status != NotAvailable || !strings.Contains(r.Reason, "offline image has no service manager") {
		t.Errorf("not running: %s (%s)", r.Status, r.Reason)
	}
}
