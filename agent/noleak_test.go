//go:build unix

package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// planted holds fresh random secrets in realistic shapes, and where they were put.
type planted struct {
	secrets []string
	root    string
	proc    string
	imds    *fakeimds.Server
}

func (p *planted) add(s string) string { p.secrets = append(p.secrets, s); return s }

func (p *planted) key(t *testing.T, prefix string) (string, string) {
	id := p.add(prefix + testenv.RandString(t, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
	return id, p.add(testenv.RandString(t, 36, testenv.Alnum+"/+") + "aZ9" + testenv.RandString(t, 1, testenv.Alnum))
}

func (p *planted) password(t *testing.T) string {
	return p.add(testenv.RandString(t, 10, testenv.Alnum) + "#" + testenv.RandString(t, 5, testenv.Alnum))
}

func writeFile(t *testing.T, root, name, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func gzipString(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

// plant builds a host tree, a procfs and an IMDS full of fresh secrets.
func plant(t *testing.T) *planted {
	p := &planted{root: t.TempDir(), proc: t.TempDir()}
	id1, sk1 := p.key(t, "AKIA")
	id2, sk2 := p.key(t, "ASIA")
	token := p.add("IQoJb3JpZ2luX2Vj" + testenv.RandString(t, 200, testenv.Alnum))
	ghp := p.add("ghp_" + testenv.RandString(t, 36, testenv.Alnum))
	pw1, pw2, pw3 := p.password(t), p.password(t), p.password(t)
	// Issue 17's shapes: cloud-config read as cloud-init reads it, and command-line and SQL
	// idioms.
	pw4, pw5, pw6, pw7, pw8 := p.password(t), p.password(t), p.password(t), p.password(t), p.password(t)
	hash := p.add("$6$" + testenv.RandString(t, 8, testenv.Alnum) + "$" + testenv.RandString(t, 86, testenv.Alnum))
	var keyLines []string
	for range 6 {
		keyLines = append(keyLines, p.add(testenv.RandString(t, 64, testenv.Alnum+"+/")))
	}
	hostKey := "-----BEGIN RSA PRIVATE KEY-----\\n" + strings.Join(keyLines, "\\n") + "\\n-----END RSA PRIVATE KEY-----\\n"
	writeFile(t, p.root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n", 0o644)
	writeFile(t, p.root, "home/alice/.aws/credentials", fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n[tmp]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n", id1, sk1, id2, sk2, token), 0o644)
	writeFile(t, p.root, "root/.git-credentials", "https://root:"+ghp+"@github.com\n", 0o600)
	writeFile(t, p.root, "etc/environment", "DB_PASSWORD="+pw1+"\n", 0o644)
	writeFile(t, p.root, "var/lib/cloud/data/instance-id", "i-0123456789abcdef0\n", 0o644)
	cloudConfig := "#cloud-config\npassword: " + pw2 + "\nwrite_files:\n  - path: /etc/app/db.env\n    encoding: gz+b64\n    content: " +
		base64.StdEncoding.EncodeToString(gzipString("DB_PASSWORD="+pw4+"\n")) + "\nruncmd:\n  - [ sshpass, -p, '" + pw5 + "', ssh, admin@10.0.0.5 ]\n" +
		"users:\n  - name: ops\n    passwd: '" + hash + "'\nssh_keys:\n  rsa_private: \"" + hostKey + "\"\n"
	cached := "Content-Type: multipart/mixed; boundary=\"QQ\"\nMIME-Version: 1.0\n\n--QQ\nContent-Type: text/cloud-config\n\n" + cloudConfig + "--QQ--\n"
	writeFile(t, p.root, "var/lib/cloud/instances/i-0fedcba9876543210/user-data.txt", string(gzipString(cached)), 0o600)

	pid := filepath.Join(p.proc, "4242")
	writeFile(t, pid, "environ", "AWS_ACCESS_KEY_ID="+id1+"\x00AWS_SECRET_ACCESS_KEY="+sk1+"\x00", 0o400)
	writeFile(t, pid, "comm", "worker\n", 0o444)
	writeFile(t, pid, "status", "Name:\tworker\nUid:\t1000\t1000\t1000\t1000\n", 0o444)

	id3, sk3 := p.key(t, "AKIA")
	live := "#!/bin/bash\nexport AWS_ACCESS_KEY_ID=" + id3 + "\nexport AWS_SECRET_ACCESS_KEY=" + sk3 + "\nmysql -uroot -p" + pw3 + " -e 'select 1'\n" +
		"htpasswd -nb admin '" + pw6 + "' > /etc/nginx/.htpasswd\nmysql -e \"CREATE USER 'app'@'%' IDENTIFIED BY '" + pw7 + "';\"\nredis-cli -u redis://:" + pw8 + "@cache:6379 ping\n"
	userData := []byte(base64.StdEncoding.EncodeToString(gzipString(live)))
	// Only the identity and the user data: no instance profile, no hostname.
	p.imds = fakeimds.New(t)
	p.imds.Set(func(s *fakeimds.Server) {
		s.HopLimit = 0
		s.Paths = map[string]string{
			"dynamic/instance-identity/document": fakeimds.Document("i-0123456789abcdef0", "eu-west-1"),
			"user-data":                          string(userData),
		}
	})
	return p
}

// assertNoLeak fails when out holds any secret, or any 8-character piece of one.
func (p *planted) assertNoLeak(t *testing.T, what string, out []byte) {
	t.Helper()
	s := string(out)
	for _, sec := range p.secrets {
		for i := 0; i+8 <= len(sec); i++ {
			if strings.Contains(s, sec[i:i+8]) {
				t.Fatalf("%s leaks part of a planted secret (%q at offset %d)", what, sec[i:i+8], i)
			}
		}
	}
}

// wantFindings checks the scan really found the planted secrets, so the no-leak assertion
// is about a report that mentions them.
func wantFindings(t *testing.T, r *Report) {
	t.Helper()
	n := map[string]int{}
	for _, res := range r.Results {
		if res.Status == probes.Failed {
			n[res.Check]++
		}
	}
	for check, min := range map[string]int{
		"userdata-secret": 5, "userdata-cached-secret": 5, "cred-long-lived-key": 1, "cred-session-key": 1,
		"secret-in-local-file": 2, "cred-process-env": 1, "cred-file-permissions": 1,
	} {
		if n[check] < min {
			t.Errorf("%s: %d FAILED results, want at least %d (%v)", check, n[check], min, n)
		}
	}
}

func TestNoLeakScan(t *testing.T) {
	testenv.System(t)
	p := plant(t)
	var log bytes.Buffer
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	r, err := Scan(context.Background(), ScanOptions{
		Root: p.root, Proc: p.proc, Probes: []string{"userdata", "credentials"}, Config: cfg,
		IMDS: metadata.New(metadata.Options{Endpoint: p.imds.URL}),
		Log:  slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, r)
	for _, format := range Formats {
		var out bytes.Buffer
		if err := Write(&out, r, format, true); err != nil {
			t.Fatal(err)
		}
		p.assertNoLeak(t, format, out.Bytes())
	}
	p.assertNoLeak(t, "log", log.Bytes())
	p.assertNoLeak(t, "report struct", fmt.Appendf(nil, "%#v", r))
	p.assertNoLeakInDir(t, cfg.StateDir)

	// Ids of secret results are stable across runs (same host key) and distinct per secret.
	r2, _ := Scan(context.Background(), ScanOptions{Root: p.root, Proc: p.proc, Probes: []string{"userdata", "credentials"}, Config: cfg, IMDS: metadata.New(metadata.Options{Endpoint: p.imds.URL})})
	ids := map[string]bool{}
	for _, res := range r.Results {
		if ids[res.ID] {
			t.Errorf("duplicate id %s", res.ID)
		}
		ids[res.ID] = true
	}
	for _, res := range r2.Results {
		if !ids[res.ID] {
			t.Errorf("id %s (%s %s) changed between runs", res.ID, res.Check, res.Resource)
		}
	}
}

func (p *planted) assertNoLeakInDir(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(path)
			p.assertNoLeak(t, path, b)
		}
		return nil
	})
}

// TestNoLeakBinary runs the built ec2sec binary on the same plant, in every format, and
// checks stdout, stderr, the --output file and the state dir.
func TestNoLeakBinary(t *testing.T) {
	testenv.System(t)
	if testing.Short() {
		t.Skip("builds the binary")
	}
	p := plant(t)
	tmp := t.TempDir()
	bin := buildBinary(t, tmp)
	state := filepath.Join(tmp, "state")
	conf := filepath.Join(tmp, "config.yaml")
	os.WriteFile(conf, []byte("state_dir: "+state+"\n"), 0o600)
	for _, format := range Formats {
		outFile := filepath.Join(tmp, "report."+format)
		for _, toFile := range []bool{false, true} {
			args := []string{"scan", "--root", p.root, "--proc", p.proc, "--probes", "userdata,credentials", "--format", format, "--config", conf}
			if toFile {
				args = append(args, "--output", outFile)
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = testenv.Environ("AWS_EC2_METADATA_SERVICE_ENDPOINT=" + p.imds.URL)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("ec2sec %v: %v\n%s", args, err, stderr.String())
			}
			p.assertNoLeak(t, format+" stdout", stdout.Bytes())
			p.assertNoLeak(t, format+" stderr", stderr.Bytes())
			if toFile {
				b, err := os.ReadFile(outFile)
				if err != nil {
					t.Fatal(err)
				}
				p.assertNoLeak(t, outFile, b)
				if format == "json" {
					var r Report
					if err := json.Unmarshal(b, &r); err != nil {
						t.Fatal(err)
					}
					wantFindings(t, &r)
				}
			}
		}
	}
	p.assertNoLeakInDir(t, state)
}

func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "ec2sec")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ec2sec")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestProcessEnvNeedsPrivilege runs the binary as nobody against the live /proc: it cannot
// read root's process environments, and must say NOT_AVAILABLE rather than PASSED.
func TestProcessEnvNeedsPrivilege(t *testing.T) {
	testenv.System(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop to nobody")
	}
	if testing.Short() {
		t.Skip("builds the binary")
	}
	tmp, err := os.MkdirTemp("", "ec2sec-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	os.Chmod(tmp, 0o755)
	bin := buildBinary(t, tmp)
	root := filepath.Join(tmp, "root")
	writeFile(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644)
	os.Chmod(root, 0o755)
	cmd := exec.Command(bin, "scan", "--root", root, "--proc", "/proc", "--probes", "credentials", "--format", "json")
	cmd.Env = testenv.Environ()
	cmd.SysProcAttr = nobody()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	for _, res := range r.Results {
		if res.Check == "cred-process-env" && res.Status != probes.NotAvailable && res.Status != probes.Failed {
			t.Errorf("as nobody: %s %s", res.Status, res.Reason)
		}
		if res.Check == "cred-process-env" && res.Status == probes.NotAvailable && !strings.Contains(res.Reason, "permission denied") {
			t.Errorf("reason does not say why: %s", res.Reason)
		}
	}
}

// nobody runs a child as uid/gid 65534.
func nobody() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
}

// TestProcessEnvLive runs the binary against the live /proc with AWS keys in its own
// environment and in a child process's: the child is reported, the scanner itself is not,
// and neither key shows in the output.
func TestProcessEnvLive(t *testing.T) {
	testenv.System(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to read other processes' environments")
	}
	if testing.Short() {
		t.Skip("builds the binary")
	}
	p := &planted{}
	childID, childSecret := p.key(t, "AKIA")
	selfID, selfSecret := p.key(t, "AKIA")
	tmp := t.TempDir()
	bin := buildBinary(t, tmp)
	root := filepath.Join(tmp, "root")
	writeFile(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644)
	conf := filepath.Join(tmp, "config.yaml")
	os.WriteFile(conf, []byte("state_dir: "+filepath.Join(tmp, "state")+"\n"), 0o600)

	child := exec.Command("sleep", "60")
	child.Env = []string{"AWS_ACCESS_KEY_ID=" + childID, "AWS_SECRET_ACCESS_KEY=" + childSecret}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })

	cmd := exec.Command(bin, "scan", "--root", root, "--proc", "/proc", "--probes", "credentials", "--format", "json", "--config", conf)
	cmd.Env = testenv.Environ("AWS_ACCESS_KEY_ID="+selfID, "AWS_SECRET_ACCESS_KEY="+selfSecret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	p.assertNoLeak(t, "stdout", stdout.Bytes())
	p.assertNoLeak(t, "stderr", stderr.Bytes())
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, res := range r.Results {
		if res.Check != "cred-process-env" || res.Status != probes.Failed {
			continue
		}
		if res.Resource == fmt.Sprintf("/proc/%d/environ", child.Process.Pid) {
			found = true
		}
		if res.Evidence["exe"] == bin {
			t.Errorf("the scanner reported its own environment: %+v", res)
		}
	}
	if !found {
		t.Errorf("the child's key was not reported: %+v", r.Results)
	}
}
