//go:build unix

package probes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

// Users whose links point at alice's files come first, so a link followed would be read
// before alice's own copy.
const passwdFixture = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
dave:x:1003:1003::/home/dave:/bin/bash
bob:x:1001:1001::/home/bob:/bin/bash
carol:x:1002:1002::/home/carol:/bin/bash
alice:x:1000:1000::/home/alice:/bin/bash
`

func TestCredentialsFiles(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	aliceID, aliceSecret := testenv.FakeAWSKey(t, "AKIA")
	bobID, bobSecret := testenv.FakeAWSKey(t, "ASIA")
	bobToken := "IQoJb3JpZ2luX2Vj" + testenv.RandString(t, 300, testenv.Alnum)
	ghp := "ghp_" + testenv.RandString(t, 36, testenv.Alnum)
	dbpw := testenv.RandString(t, 14, testenv.Alnum) + "%z"
	outID, outSecret := testenv.FakeAWSKey(t, "AKIA")
	unitID, unitSecret := testenv.FakeAWSKey(t, "AKIA")
	apiToken := testenv.RandString(t, 32, testenv.Alnum)
	netrcPW := testenv.RandString(t, 12, testenv.Alnum) + "^"
	os.WriteFile(filepath.Join(outside, "creds"), []byte("aws_access_key_id="+outID+"\naws_secret_access_key="+outSecret+"\n"), 0o644)
	rel, _ := filepath.Rel(filepath.Join(root, "home/carol"), filepath.Join(outside, "creds"))

	buildTree(t, root, []entry{
		{path: "/etc/passwd", content: passwdFixture},
		{path: "/root/.bashrc", content: "alias ll='ls -l'\n"},
		{path: "/root/.netrc", content: "machine ftp.example.org\n  login backup\n  password " + netrcPW + "\n", mode: 0o600},
		{path: "/home/alice/.aws/credentials", content: "[default]\naws_access_key_id = " + aliceID + "\naws_secret_access_key = " + aliceSecret + "\n", mode: 0o600, uid: 1000},
		{path: "/home/alice/.aws/config", content: "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\ncredential_process = /usr/local/bin/creds\nsso_start_url = https://acme.awsapps.com/start\n", mode: 0o644, uid: 1000},
		{path: "/home/alice/.git-credentials", content: "https://alice:" + ghp + "@github.com\n", mode: 0o600, uid: 1000},
		{path: "/home/alice/.bash_history", fifo: true}, // must never block the scan
		{path: "/home/bob/.aws/credentials", content: "[tmp]\naws_access_key_id=" + bobID + "\naws_secret_access_key=" + bobSecret + "\naws_session_token=" + bobToken + "\n", mode: 0o644, uid: 1001},
		// bob's link to alice's file: never read through it
		{path: "/home/bob/.netrc", link: "/home/alice/.git-credentials"},
		// dave's .aws is a link to alice's: never read through it either
		{path: "/home/dave/.aws", link: "../alice/.aws"},
		// carol's link out of the root resolves inside it (as chrooted): to nothing
		{path: "/home/carol/.s3cfg", link: rel},
		{path: "/home/carol/.profile", link: "/../../../../../../" + filepath.Join(outside, "creds")},
		{path: "/etc/environment", content: "PATH=/usr/bin\nDB_PASSWORD=" + dbpw + "\n", mode: 0o644},
		{path: "/etc/profile.d/proxy.sh", content: "export HTTP_PROXY=http://proxy:3128\n"},
		{path: "/etc/systemd/system/app.service", content: "[Service]\nEnvironmentFile=-/opt/app/app.env\nEnvironment=API_TOKEN=" + apiToken + "\nExecStart=/opt/app/bin/app\n"},
		{path: "/opt/app/app.env", content: "AWS_ACCESS_KEY_ID=" + unitID + "\nAWS_SECRET_ACCESS_KEY=" + unitSecret + "\n", mode: 0o600},
	})
	env := testEnv(t, onRoot(root), withSecrets())
	rs, err := CredentialsProbe{}.Run(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		t.Logf("%s %s %s: %s", r.Check, r.Status, r.Resource, r.Reason)
	}
	expect := func(check, resource string, status Status) Result {
		t.Helper()
		i := slices.IndexFunc(rs, func(r Result) bool { return r.Check == check && r.Resource == resource })
		if i < 0 || rs[i].Status != status {
			t.Fatalf("want %s %s %s", check, resource, status)
		}
		return rs[i]
	}
	r := expect("cred-long-lived-key", "/home/alice/.aws/credentials", Failed)
	if r.Evidence["redacted"] != aliceID[:4]+"..."+aliceID[16:] || r.Evidence["line"] != 2 || r.Evidence["source"] != "file" {
		t.Errorf("evidence %v", r.Evidence)
	}
	expect("cred-session-key", "/home/bob/.aws/credentials", Failed)
	expect("secret-in-local-file", "/home/alice/.git-credentials", Failed)
	expect("secret-in-local-file", "/etc/environment", Failed)
	expect("secret-in-local-file", "/etc/systemd/system/app.service", Failed)
	expect("cred-long-lived-key", "/opt/app/app.env", Failed)
	expect("secret-in-local-file", "/root/.netrc", Failed)
	if len(byCheck(rs, "cred-session-key")) != 1 || len(byCheck(rs, "cred-long-lived-key")) != 2 {
		t.Errorf("want exactly one result per key (id and secret together, token included)")
	}
	for _, r := range rs {
		if strings.HasPrefix(r.Resource, "/home/carol") {
			t.Errorf("read through a link out of the root: %+v", r)
		}
		// Owners differ only when the tree was built as root.
		if os.Geteuid() == 0 && (strings.HasPrefix(r.Resource, "/home/dave") || r.Resource == "/home/bob/.netrc") {
			t.Errorf("read through a link to another user's file: %+v", r)
		}
	}
	// Permissions: bob's world-readable credentials; /etc/environment is root's and 0644.
	expect("cred-file-permissions", "/home/bob/.aws/credentials", Failed)
	expect("cred-file-permissions", "/etc/environment", Failed)
	if os.Geteuid() == 0 {
		if slices.ContainsFunc(rs, func(r Result) bool {
			return r.Check == "cred-file-permissions" && r.Resource == "/home/alice/.aws/credentials"
		}) {
			t.Error("alice's 0600 own file flagged")
		}
		// alice's file owned by root: another user's
		os.Chown(filepath.Join(root, "home/alice/.git-credentials"), 0, 0)
		rs, _ = CredentialsProbe{}.Run(context.Background(), env)
		expect("cred-file-permissions", "/home/alice/.git-credentials", Failed)
	} else {
		t.Log("not root: owner checks not exercised")
	}
}

func TestCredentialsProcessEnv(t *testing.T) {
	proc := t.TempDir()
	id, secret := testenv.FakeAWSKey(t, "AKIA")
	write := func(pid int, environ string, uid int) {
		d := filepath.Join(proc, strconv.Itoa(pid))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "environ"), []byte(environ), 0o400)
		os.WriteFile(filepath.Join(d, "comm"), []byte("app\n"), 0o444)
		os.WriteFile(filepath.Join(d, "status"), fmt.Appendf(nil, "Name:\tapp\nPPid:\t1\nUid:\t%d\t%d\t%d\t%d\n", uid, uid, uid, uid), 0o444)
	}
	write(100, "HOME=/root\x00PATH=/usr/bin\x00", 0)
	write(200, "AWS_ACCESS_KEY_ID="+id+"\x00AWS_SECRET_ACCESS_KEY="+secret+"\x00LANG=C\x00", 1000)
	write(300, "AWS_ACCESS_KEY_ID="+id+"\x00", 1000) // an id alone is no secret
	os.Symlink("/usr/bin/app", filepath.Join(proc, "200", "exe"))
	root := t.TempDir()
	buildTree(t, root, []entry{{path: "/etc/passwd", content: passwdFixture}})
	env := testEnv(t, onRoot(root), withProc(proc), withSecrets())
	rs, err := CredentialsProbe{}.Run(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	pe := byCheck(rs, "cred-process-env")
	if len(pe) != 1 || pe[0].Status != Failed || pe[0].Resource != "/proc/200/environ" {
		t.Fatalf("%+v", pe)
	}
	ev := pe[0].Evidence
	if ev["pid"] != 200 || ev["exe"] != "/usr/bin/app" || ev["user"] != "alice" || ev["source"] != "process-env" || ev["line"] != 1 {
		t.Errorf("evidence %v", ev)
	}
	if strings.Contains(pe[0].Reason, secret[:8]) {
		t.Error("reason holds the secret")
	}

	env.Proc = ""
	rs, _ = CredentialsProbe{}.Run(context.Background(), env)
	if pe := byCheck(rs, "cred-process-env"); len(pe) != 1 || pe[0].Status != NotAvailable {
		t.Fatalf("no procfs: %+v", pe)
	}
}

// BenchmarkSecretProbes is a full secrets scan of a host with 200 users (rc files, one
// credentials file each), 2000 processes and 3 cached user-data files.
func BenchmarkSecretProbes(b *testing.B) {
	root, proc := b.TempDir(), b.TempDir()
	var passwd strings.Builder
	passwd.WriteString("root:x:0:0:root:/root:/bin/bash\n")
	var entries []entry
	for i := range 200 {
		u := fmt.Sprintf("user%d", i)
		fmt.Fprintf(&passwd, "%s:x:%d:%d::/home/%s:/bin/bash\n", u, 2000+i, 2000+i, u)
		entries = append(entries,
			entry{path: "/home/" + u + "/.bashrc", content: strings.Repeat("alias ll='ls -l'\nexport PATH=$PATH:/opt/bin\n", 20)},
			entry{path: "/home/" + u + "/.profile", content: "[ -f ~/.bashrc ] && . ~/.bashrc\n"},
			entry{path: "/home/" + u + "/.aws/config", content: "[default]\nregion = eu-west-1\nrole_arn = arn:aws:iam::123456789012:role/x\n"},
		)
	}
	entries = append(entries, entry{path: "/etc/passwd", content: passwd.String()})
	for i := range 3 {
		entries = append(entries, entry{path: fmt.Sprintf("/var/lib/cloud/instances/i-%017d/user-data.txt", i), content: "#!/bin/bash\nyum install -y httpd\nsystemctl enable --now httpd\n"})
	}
	buildTree(b, root, entries)
	for pid := 1; pid <= 2000; pid++ {
		d := filepath.Join(proc, strconv.Itoa(pid))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "environ"), []byte("HOME=/root\x00PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin\x00LANG=C.UTF-8\x00INVOCATION_ID=0123456789abcdef0123456789abcdef\x00"), 0o400)
	}
	env := testEnv(b, onRoot(root), withProc(proc), withSecrets())
	b.ResetTimer()
	for b.Loop() {
		if _, err := (CredentialsProbe{}).Run(context.Background(), env); err != nil {
			b.Fatal(err)
		}
		if _, err := (UserDataProbe{}).Run(context.Background(), env); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCredentialsReadersAgree: with files enough for both readers, the same file reached by
// two paths counts once, for the first path in queue order, however the readers were timed;
// and every run reports the same results.
func TestCredentialsReadersAgree(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	root := t.TempDir()
	id, secret := testenv.FakeAWSKey(t, "AKIA")
	entries := []entry{{path: "/etc/passwd", content: passwdFixture}}
	// a00.sh holds the key; 3*credChunk files later (other readers' chunks) z.sh links to it.
	entries = append(entries, entry{path: "/etc/profile.d/a00.sh", content: "export AWS_ACCESS_KEY_ID=" + id + "\nexport AWS_SECRET_ACCESS_KEY=" + secret + "\n"})
	for i := 1; i < 3*credChunk; i++ {
		entries = append(entries, entry{path: fmt.Sprintf("/etc/profile.d/a%02d.sh", i), content: fmt.Sprintf("export N=%d\n", i)})
	}
	entries = append(entries, entry{path: "/etc/profile.d/z.sh", link: "a00.sh"})
	buildTree(t, root, entries)
	env := testEnv(t, onRoot(root), withSecrets())
	var first string
	for run := range 20 {
		rs, err := CredentialsProbe{}.Run(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		keys := byCheck(rs, "cred-long-lived-key")
		if len(keys) != 1 || keys[0].Resource != "/etc/profile.d/a00.sh" {
			t.Fatalf("run %d: key results %+v, want one, at a00.sh", run, keys)
		}
		pass := byCheck(rs, "cred-session-key")
		if len(pass) != 1 || pass[0].Evidence["files"] != 3*credChunk {
			t.Fatalf("run %d: %+v, want %d files read (z.sh is a00.sh)", run, pass, 3*credChunk)
		}
		var b strings.Builder
		for _, r := range rs {
			fmt.Fprintf(&b, "%s %s %s %s\n", r.Check, r.Status, r.Resource, r.Reason)
		}
		if run == 0 {
			first = b.String()
		} else if b.String() != first {
			t.Fatalf("run %d differs:\n%s\nfirst:\n%s", run, b.String(), first)
		}
	}
}

// TestCredentialsProcessesShared: with processes enough for both readers (which take them
// after the files, whoever is free), every environment is read once, the findings come in
// pid order, and a probe stopped by its deadline says how far it got.
func TestCredentialsProcessesShared(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	proc := t.TempDir()
	var want []string
	for pid := 1; pid <= 5*credChunk; pid++ {
		d := filepath.Join(proc, strconv.Itoa(pid))
		os.MkdirAll(d, 0o755)
		environ := "HOME=/root\x00"
		if pid%13 == 0 {
			id, secret := testenv.FakeAWSKey(t, "AKIA")
			environ += "AWS_ACCESS_KEY_ID=" + id + "\x00AWS_SECRET_ACCESS_KEY=" + secret + "\x00"
			want = append(want, fmt.Sprintf("/proc/%d/environ", pid))
		}
		os.WriteFile(filepath.Join(d, "environ"), []byte(environ), 0o400)
		os.WriteFile(filepath.Join(d, "comm"), []byte("app\n"), 0o444)
	}
	root := t.TempDir()
	buildTree(t, root, []entry{{path: "/etc/passwd", content: passwdFixture}})
	env := testEnv(t, onRoot(root), withProc(proc), withSecrets())
	for range 10 {
		rs, err := CredentialsProbe{}.Run(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range byCheck(rs, "cred-process-env") {
			got = append(got, r.Resource)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("process findings %v, want %v", got, want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rs, _ := CredentialsProbe{}.Run(ctx, env)
	pe := byCheck(rs, "cred-process-env")
	if len(pe) != 1 || pe[0].Status != NotAvailable || !strings.Contains(pe[0].Reason, fmt.Sprintf("stopped after 0 of %d processes: context canceled", 5*credChunk)) {
		t.Errorf("cancelled: %+v", pe)
	}
	// A procfs without processes is read, and found clean.
	env = testEnv(t, onRoot(root), withProc(t.TempDir()), withSecrets())
	rs, _ = CredentialsProbe{}.Run(context.Background(), env)
	if pe := byCheck(rs, "cred-process-env"); len(pe) != 1 || pe[0].Status != Passed || !strings.Contains(pe[0].Reason, "of 0 processes") {
		t.Errorf("no process: %+v", pe)
	}
}

// TestCredentialsIdiomsInHostFiles: the command-line and SQL idioms are found where hosts
// keep them (a shell history, a crontab, a unit), at the line holding the value, and a
// keyless ~/.aws/config is configuration, not a secret.
func TestCredentialsIdiomsInHostFiles(t *testing.T) {
	pw := func() string { return testenv.RandString(t, 12, testenv.Alnum) + "#q" }
	root := t.TempDir()
	buildTree(t, root, []entry{
		{path: "/etc/passwd", content: passwdFixture},
		{path: "/root/.bash_history", content: "ls\nsshpass -p '" + pw() + "' ssh admin@10.0.0.5\n", mode: 0o600},
		{path: "/etc/cron.d/backup", content: "# nightly\n15 3 * * * root mysqldump -u backup -p" + pw() + " --all-databases > /backup/all.sql\n"},
		{path: "/etc/systemd/system/seed.service", content: "[Service]\nType=oneshot\nExecStart=/usr/bin/mysql -e \"CREATE USER 'app'@'%' IDENTIFIED BY '" + pw() + "';\"\n"},
		{path: "/home/alice/.aws/config", content: "[default]\nregion = eu-west-1\n[profile ec2]\nrole_arn = arn:aws:iam::123456789012:role/app\ncredential_source = Ec2InstanceMetadata\n", mode: 0o600, uid: 1000},
	})
	rs, err := CredentialsProbe{}.Run(context.Background(), testEnv(t, onRoot(root), withSecrets()))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		rule string
		line int
	}{
		"/root/.bash_history":              {"sshpass-password", 2},
		"/etc/cron.d/backup":               {"mysql-password-argument", 2},
		"/etc/systemd/system/seed.service": {"sql-password", 3},
	}
	for _, r := range byCheck(rs, "secret-in-local-file") {
		if r.Status != Failed {
			continue
		}
		w, ok := want[r.Resource]
		if !ok {
			t.Errorf("unexpected: %s %s", r.Resource, r.Reason)
			continue
		}
		if r.Evidence["rule"] != w.rule || r.Evidence["line"] != w.line {
			t.Errorf("%s: %v, want %s at line %d", r.Resource, r.Evidence, w.rule, w.line)
		}
		delete(want, r.Resource)
	}
	for path := range want {
		t.Errorf("%s: not found", path)
	}
}
