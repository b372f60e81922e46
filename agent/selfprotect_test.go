//go:build linux

package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/procfs"
)

// Self-protection: the agent opens no listening socket and connects only to IMDS and the
// endpoints it is configured with (here, loopback fakes); in a host without network it still
// finishes and says what it could not see.

// selfIMDS answers like IMDS on an instance in eu-west-1 with no role and no public IPv4,
// recording every request.
func selfIMDS(t *testing.T) *fakeimds.Server {
	t.Helper()
	s := fakeimds.New(t)
	s.Paths["dynamic/instance-identity/document"] = `{"instanceId":"i-0123456789abcdef0","accountId":"123456789012","region":"eu-west-1","imageId":"ami-0123456789abcdef0"}`
	s.Paths["meta-data/hostname"] = "ip-10-0-0-1.eu-west-1.compute.internal"
	delete(s.Paths, "meta-data/iam/info")
	return s
}

// listeningInodes returns the inodes of the TCP sockets in LISTEN state that this process
// holds open: its fds' socket inodes that its network namespace's tables list as LISTEN.
func listeningInodes() (map[uint64]bool, error) {
	ls, err := procfs.FS{Dir: "/proc/self"}.Listeners()
	if err != nil {
		return nil, err
	}
	listen := map[uint64]bool{}
	for _, l := range ls {
		listen[l.Inode] = true
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	out := map[uint64]bool{}
	for _, fd := range fds {
		t, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := procfs.SocketInode(t); ok && listen[ino] {
			out[ino] = true
		}
	}
	return out, nil
}

// TestScanOpensNoListener runs a full scan in process against loopback fakes, sampling this
// process's listening sockets throughout (the test's own fakes are there before it starts),
// and records every dial the probes make through ScanOptions.Dial.
func TestScanOpensNoListener(t *testing.T) {
	testenv.System(t)
	imds := selfIMDS(t)
	ssm := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(ssm.Close)
	before, err := listeningInodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 {
		t.Fatal("the fakes' listeners are not seen: the check would see nothing either")
	}

	allowed := map[string]bool{urlHost(t, imds.URL): true, urlHost(t, ssm.URL): true}
	var mu sync.Mutex
	var dials []string
	d := &net.Dialer{}
	env := map[string]string{
		"AWS_ENDPOINT_URL_SSM": ssm.URL, "AWS_ENDPOINT_URL_SSMMESSAGES": ssm.URL, "AWS_ENDPOINT_URL_EC2MESSAGES": ssm.URL,
	}
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	root := t.TempDir()
	writeFile(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644)

	stop := make(chan struct{})
	var extra []uint64
	var sampleErr error
	var sampled sync.WaitGroup
	sampled.Add(1)
	go func() {
		defer sampled.Done()
		for {
			now, err := listeningInodes()
			if err != nil {
				sampleErr = err
				return
			}
			for ino := range now {
				if !before[ino] && !slices.Contains(extra, ino) {
					extra = append(extra, ino)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	r, err := Scan(context.Background(), ScanOptions{
		Root: root, Proc: "/proc", Config: cfg,
		IMDS: metadata.New(metadata.Options{Endpoint: imds.URL}),
		Log:  slog.New(slog.DiscardHandler),
		Getenv: func(k string) string {
			if v, ok := env[k]; ok {
				return v
			}
			return os.Getenv(k)
		},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dials = append(dials, addr)
			mu.Unlock()
			return d.DialContext(ctx, network, addr)
		},
	})
	close(stop)
	sampled.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sampleErr != nil {
		t.Fatal(sampleErr)
	}
	if len(extra) > 0 {
		t.Errorf("the scan opened %d listening sockets (inodes %v)", len(extra), extra)
	}
	if len(dials) == 0 {
		t.Error("no dial went through ScanOptions.Dial: the SSM endpoints were not checked")
	}
	for _, a := range dials {
		if !allowed[a] {
			t.Errorf("the scan dialled %s, which is neither IMDS nor a configured endpoint", a)
		}
	}
	if res := results(r, "ssm-endpoints-unreachable"); len(res) == 0 {
		t.Logf("no ssm-endpoints-unreachable result (ssm agent absent): %v", r.Probes)
	}
}

func urlHost(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Host
}

// straceConnect matches the address of an AF_INET or AF_INET6 connect(2) in strace output.
var (
	straceInet  = regexp.MustCompile(`connect\(\d+, \{sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)`)
	straceInet6 = regexp.MustCompile(`connect\(\d+, \{sa_family=AF_INET6, sin6_port=htons\((\d+)\),.*?inet_pton\(AF_INET6, "([^"]+)"`)
)

// TestBinaryNetworkFootprint runs the built binary under strace with IMDS, the SSM endpoints
// and every AWS endpoint pointed at loopback fakes: it never calls listen(2), and every
// connect(2) to an IP address goes to one of the fakes. strace sees what no injected dialer
// can: the SDK's and the IMDS checks' own transports, and DNS.
func TestBinaryNetworkFootprint(t *testing.T) {
	testenv.System(t)
	if testing.Short() {
		t.Skip("builds the binary")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		testenv.Missing(t, "strace is not installed (apt-get install strace)")
	}
	imds := selfIMDS(t)
	ssm := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(ssm.Close)
	aws := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(aws.Close)
	allowed := map[string]bool{urlHost(t, imds.URL): true, urlHost(t, ssm.URL): true, urlHost(t, aws.URL): true}

	tmp := t.TempDir()
	bin := buildBinary(t, tmp)
	root := filepath.Join(tmp, "root")
	writeFile(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644)
	conf := filepath.Join(tmp, "config.yaml")
	os.WriteFile(conf, []byte("state_dir: "+filepath.Join(tmp, "state")+"\n"), 0o600)
	trace := filepath.Join(tmp, "strace.out")
	cmd := exec.Command(strace, "-f", "-qq", "-e", "trace=connect,bind,listen", "-o", trace,
		bin, "scan", "--root", root, "--proc", "/proc", "--format", "json", "--config", conf)
	cmd.Env = testenv.Environ(
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL, "AWS_ENDPOINT_URL="+aws.URL,
		"AWS_ENDPOINT_URL_SSM="+ssm.URL, "AWS_ENDPOINT_URL_SSMMESSAGES="+ssm.URL, "AWS_ENDPOINT_URL_EC2MESSAGES="+ssm.URL,
		"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS="+aws.URL, "AWS_ENDPOINT_URL_SECURITYHUB="+aws.URL,
		"AWS_ENDPOINT_URL_EC2="+aws.URL, "AWS_ENDPOINT_URL_STS="+aws.URL)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !slices.Contains(imds.Requested(), "GET /latest/dynamic/instance-identity/document") {
		t.Fatal("the fake IMDS was not asked who the host is: the trace would prove nothing")
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	connects := 0
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(line, "listen("):
			t.Errorf("the agent listens: %s", line)
		case strings.Contains(line, "bind(") && !strings.Contains(line, "AF_NETLINK"):
			t.Errorf("the agent binds a socket: %s", line)
		}
		var addr string
		if m := straceInet.FindStringSubmatch(line); m != nil {
			addr = net.JoinHostPort(m[2], m[1])
		} else if m := straceInet6.FindStringSubmatch(line); m != nil {
			addr = net.JoinHostPort(m[2], m[1])
		} else if strings.Contains(line, "connect(") && (strings.Contains(line, "AF_INET") || strings.Contains(line, "AF_INET6")) {
			t.Errorf("unparsed connect: %s", line)
			continue
		} else {
			continue
		}
		connects++
		if !allowed[addr] {
			t.Errorf("the agent connected to %s, which is neither IMDS nor a configured endpoint: %s", addr, line)
		}
	}
	if connects == 0 {
		t.Fatalf("strace saw no connect at all:\n%s", b)
	}
	t.Logf("%d connects, all to the fakes %v", connects, allowed)
}

// TestBinaryWithoutNetwork runs the binary in a new network namespace (loopback down, no
// route anywhere): the scan completes quickly, and the checks that need IMDS or the network
// say NOT_AVAILABLE with the reason instead of hanging or passing.
func TestBinaryWithoutNetwork(t *testing.T) {
	testenv.System(t)
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare -n")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		testenv.Missing(t, "unshare (util-linux) is not installed")
	}
	tmp := t.TempDir()
	bin := buildBinary(t, tmp)
	root := filepath.Join(tmp, "root")
	writeFile(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644)
	conf := filepath.Join(tmp, "config.yaml")
	os.WriteFile(conf, []byte("state_dir: "+filepath.Join(tmp, "state")+"\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "-n", bin, "scan", "--root", root, "--proc", "/proc", "--format", "json", "--config", conf)
	cmd.Env = testenv.Environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	t.Logf("scan without network took %s", time.Since(start).Round(time.Millisecond))
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	for _, check := range []string{"imds-v1-enabled", "imds-hop-limit", "userdata-secret", "public-ipv4"} {
		res := results(&r, check)
		if len(res) == 0 {
			t.Errorf("%s: no result", check)
			continue
		}
		for _, x := range res {
			if x.Status != probes.NotAvailable || !strings.Contains(x.Reason, "IMDS") {
				t.Errorf("%s without network: %s %q, want NOT_AVAILABLE naming IMDS", check, x.Status, x.Reason)
			}
		}
	}
}
