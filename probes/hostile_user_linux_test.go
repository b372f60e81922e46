package probes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

// A hostile local user against the credentials probe: attacks a user without privileges can
// make on the files the agent reads as root.

const eveUID = 1500

// hostileHome builds a root with /etc/passwd naming eve (uid 1500) and root's key in
// /root/.aws/credentials (0600, root's; root itself is not in passwd, so nothing reads
// that file by its own name). It returns the root and root's key id.
func hostileHome(t *testing.T, extra ...entry) (root, rootKeyID string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: files owned by another user")
	}
	base, err := os.MkdirTemp("", "ec2sec-hostileuser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755) // eve must reach her home
	root = filepath.Join(base, "root")
	id, secret := testenv.FakeAWSKey(t, "AKIA")
	entries := append([]entry{
		{path: "/etc/passwd", content: "eve:x:1500:1500::/home/eve:/bin/sh\n"},
		{path: "/root/.aws/credentials", content: "[default]\naws_access_key_id = " + id + "\naws_secret_access_key = " + secret + "\n", mode: 0o600},
		{path: "/home/eve", dir: true, uid: eveUID},
		{path: "/home/eve/.aws", dir: true, uid: eveUID},
	}, extra...)
	buildTree(t, root, entries)
	os.Chmod(filepath.Join(root, "root"), 0o700)
	return root, id
}

// asUser runs fn on a thread of its own whose real, effective and saved uid and gid are
// uid: the raw setresuid is per thread on Linux (Go's syscall.Setuid would change every
// thread), and it drops the thread's capabilities. The thread is never given back to the
// scheduler (the goroutine ends locked), so no other goroutine runs with that uid.
func asUser(t *testing.T, uid int, fn func() error) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			done <- e
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			done <- e
			return
		}
		done <- fn()
	}()
	return done
}

// TestSymlinkSwapRace: eve swaps her ~/.aws/credentials with a link to root's, in a loop
// (renameat2 RENAME_EXCHANGE, as uid 1500), while the probe scans again and again for a
// bounded time. Root's key is never reported: not as eve's, not at all. (The old reader fell
// back to a read that followed the link after its owner check: root's key in about 1 of 200
// scans.)
func TestSymlinkSwapRace(t *testing.T) {
	testenv.System(t)
	testenv.System(t)
	ghp := "ghp_" + testenv.RandString(t, 36, testenv.Alnum)
	root, rootKey := hostileHome(t,
		entry{path: "/home/eve/.aws/credentials", content: "[default]\ngithub_token = " + ghp + "\n", mode: 0o600, uid: eveUID},
		entry{path: "/home/eve/.aws/swap", link: "/root/.aws/credentials"},
	)
	aws := filepath.Join(root, "home/eve/.aws")
	os.Lchown(filepath.Join(aws, "swap"), eveUID, eveUID)
	env := testEnv(t, onRoot(root), withSecrets())

	var stop atomic.Bool
	var swaps atomic.Int64
	done := asUser(t, eveUID, func() error {
		// Eve cannot read root's file herself: the swapper really is unprivileged.
		if _, err := os.ReadFile(filepath.Join(root, "root/.aws/credentials")); err == nil {
			return os.ErrInvalid
		}
		a, b := filepath.Join(aws, "credentials"), filepath.Join(aws, "swap")
		for !stop.Load() {
			if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
				return err
			}
			swaps.Add(1)
		}
		return nil
	})
	scans, own, changed := 0, 0, 0
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) && scans < 3000 {
		rs, err := CredentialsProbe{}.Run(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		scans++
		for _, r := range rs {
			if r.Check == "cred-long-lived-key" && r.Status == Failed || strings.Contains(evidenceJSON(t, []Result{r}), rootKey[len(rootKey)-4:]) {
				t.Fatalf("scan %d reported root's key (%d swaps): %s %s: %s", scans, swaps.Load(), r.Check, r.Resource, r.Reason)
			}
			if r.Check == "secret-in-local-file" && r.Status == Failed {
				own++
			}
			if strings.Contains(r.Reason, "replaced between the look and the read") {
				changed++
			}
		}
	}
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("the swapping thread (uid %d): %v", eveUID, err)
	}
	t.Logf("%d scans, %d swaps; eve's own token found in %d, a swap caught between look and read in %d", scans, swaps.Load(), own, changed)
	if swaps.Load() < int64(scans) {
		t.Errorf("only %d swaps in %d scans: the race was not run", swaps.Load(), scans)
	}
}

// TestHardLinkToAnotherUsersFile: eve's ~/.aws/credentials is a second name of root's file
// (a hard link, as where fs.protected_hardlinks is off, or in an image): treated like a
// link to another user's file, not read, and said.
func TestHardLinkToAnotherUsersFile(t *testing.T) {
	testenv.System(t)
	root, rootKey := hostileHome(t)
	if err := os.Link(filepath.Join(root, "root/.aws/credentials"), filepath.Join(root, "home/eve/.aws/credentials")); err != nil {
		t.Fatal(err)
	}
	rs, err := CredentialsProbe{}.Run(context.Background(), testEnv(t, onRoot(root), withSecrets()))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if strings.Contains(evidenceJSON(t, []Result{r}), rootKey[len(rootKey)-4:]) || strings.Contains(r.Reason, rootKey[len(rootKey)-4:]) {
			t.Errorf("root's key reported through eve's hard link: %s %s %s", r.Check, r.Status, r.Reason)
		}
	}
	if r := one(t, rs, "cred-long-lived-key"); r.Status != Passed || !strings.Contains(r.Reason, "not read: /home/eve/.aws/credentials") {
		t.Errorf("cred-long-lived-key %s: %s; want PASSED naming the file not read", r.Status, r.Reason)
	}
}

// TestFindingsBounded: two 250 KB shell histories of password=<random> lines (about 20,000
// findings) and a 1 MiB keyword-dense file. The probe reports at most maxFindingsPerFile
// findings a file, stops scanning a file once its first 64 KiB hold more, and says so in one
// WARNING per check; every check is answered. (The old probe returned 19,699 results.)
func TestFindingsBounded(t *testing.T) {
	testenv.System(t)
	testenv.System(t)
	root := t.TempDir()
	var h strings.Builder
	for h.Len() < 250<<10 {
		h.WriteString("password=" + testenv.RandString(t, 16, testenv.Alnum) + "\n")
	}
	var d strings.Builder
	words := []string{"password", "secret", "token", "api_key", "passwd", "aws_secret_access_key", "client_secret", "auth", "key", "credential"}
	for i := 0; d.Len() < 1<<20; i++ {
		d.WriteString(words[i%len(words)])
		d.WriteString(" =\n"[i%3 : i%3+1])
	}
	buildTree(t, root, []entry{
		{path: "/etc/passwd", content: "a:x:1000:1000::/home/a:/bin/sh\nb:x:1001:1001::/home/b:/bin/sh\n"},
		{path: "/home/a/.bash_history", content: h.String(), mode: 0o600},
		{path: "/home/b/.zsh_history", content: strings.ReplaceAll(h.String(), "password=", "export DB_PASSWORD="), mode: 0o600},
		{path: "/etc/profile.d/dense.sh", content: d.String()},
	})
	rs, err := CredentialsProbe{}.Run(context.Background(), testEnv(t, onRoot(root), withSecrets()))
	if err != nil {
		t.Fatal(err)
	}
	byStatus := map[string]map[Status]int{}
	for _, r := range rs {
		if byStatus[r.Check] == nil {
			byStatus[r.Check] = map[Status]int{}
		}
		byStatus[r.Check][r.Status]++
	}
	t.Logf("%d results: %v", len(rs), byStatus)
	if len(rs) > maxSecretResults+10 {
		t.Errorf("%d results, want at most %d and a few WARNINGs", len(rs), maxSecretResults)
	}
	perFile := map[string]int{}
	for _, r := range rs {
		if r.Status == Failed && r.Check == "secret-in-local-file" {
			perFile[r.Resource]++
		}
	}
	for _, f := range []string{"/home/a/.bash_history", "/home/b/.zsh_history"} {
		if n := perFile[f]; n == 0 || n > maxFindingsPerFile {
			t.Errorf("%d findings in %s, want 1 to %d", n, f, maxFindingsPerFile)
		}
	}
	w := slices.IndexFunc(rs, func(r Result) bool { return r.Check == "secret-in-local-file" && r.Status == Warning })
	if w < 0 || byStatus["secret-in-local-file"][Warning] != 1 {
		t.Fatalf("want one WARNING for secret-in-local-file, got %v", byStatus["secret-in-local-file"])
	}
	for _, want := range []string{"/home/a/.bash_history", "/home/b/.zsh_history", "not scanned to the end"} {
		if !strings.Contains(rs[w].Reason, want) {
			t.Errorf("WARNING %q does not name %q", rs[w].Reason, want)
		}
	}
	for _, c := range (CredentialsProbe{}).Checks() {
		if c.ID == envCheck {
			continue // no procfs in this fixture
		}
		if byStatus[c.ID][NotAvailable] > 0 || len(byStatus[c.ID]) == 0 {
			t.Errorf("%s not answered: %v", c.ID, byStatus[c.ID])
		}
	}
}

// errAfter is a context whose Err says the deadline passed after n calls: the probe asks
// once per file, so the first n files are read and the rest are not, every run alike.
type errAfter struct {
	context.Context
	n atomic.Int64
}

func (c *errAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.DeadlineExceeded
	}
	return nil
}

// TestDeadlineCostsOnlyUnreadFiles: the probe's time runs out after the first file. What it
// found there stays FAILED; each file check says (WARNING with findings, NOT_AVAILABLE
// without) which file it did not read; cred-file-permissions keeps its answer. (The old
// probe made every check without a finding "could not read every credential location" and
// left the FAILED one as if the look had been whole.)
func TestDeadlineCostsOnlyUnreadFiles(t *testing.T) {
	testenv.System(t)
	root := t.TempDir()
	id, secret := testenv.FakeAWSKey(t, "AKIA")
	buildTree(t, root, []entry{
		{path: "/etc/passwd", content: "alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n"},
		{path: "/home/alice/.aws/credentials", content: "[default]\naws_access_key_id = " + id + "\naws_secret_access_key = " + secret + "\n", mode: 0o600, uid: 1000},
		{path: "/home/bob/.git-credentials", content: "https://bob:ghp_" + testenv.RandString(t, 36, testenv.Alnum) + "@github.com\n", mode: 0o600, uid: 1001},
	})
	ctx := &errAfter{Context: context.Background()}
	ctx.n.Store(1)
	rs, err := CredentialsProbe{}.Run(ctx, testEnv(t, onRoot(root), withSecrets()))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		t.Logf("%s %s %s: %s", r.Check, r.Status, r.Resource, r.Reason)
	}
	status := func(check string, st Status) Result {
		t.Helper()
		i := slices.IndexFunc(rs, func(r Result) bool { return r.Check == check && r.Status == st })
		if i < 0 {
			t.Fatalf("no %s result for %s", st, check)
		}
		return rs[i]
	}
	status("cred-long-lived-key", Failed)
	for _, r := range []Result{status("cred-long-lived-key", Warning), status("secret-in-local-file", NotAvailable), status("cred-session-key", NotAvailable)} {
		if !strings.Contains(r.Reason, "/home/bob/.git-credentials") || !strings.Contains(r.Reason, "time ran out") {
			t.Errorf("%s %s does not name the unread file: %s", r.Check, r.Status, r.Reason)
		}
	}
	if r := one(t, rs, "cred-file-permissions"); r.Status != Passed {
		t.Errorf("cred-file-permissions %s: %s", r.Status, r.Reason)
	}
}

// TestNoSilentPassAtLimits: a secret past a limit gives no PASSED. The 1,001st file of
// /etc/profile.d, the home of the 10,001st user, cloud-init's 1,001st script: the checks
// are WARNING naming what was not read. A cloud-init instance directory named i-0abc[1] is
// read as the name it is, not taken for a pattern (the old probe never read it: PASSED).
func TestNoSilentPassAtLimits(t *testing.T) {
	testenv.System(t)
	testenv.System(t)
	pw := testenv.RandString(t, 14, testenv.Alnum) + "#q"
	line := "export DB_PASSWORD=" + pw + "\n"
	t.Run("profile.d", func(t *testing.T) {
		root := t.TempDir()
		es := []entry{{path: "/etc/passwd", content: "root:x:0:0::/root:/bin/sh\n"}}
		for i := range maxDirEntries {
			es = append(es, entry{path: fmt.Sprintf("/etc/profile.d/a%04d.sh", i), content: "umask 022\n"})
		}
		es = append(es, entry{path: "/etc/profile.d/z.sh", content: line})
		buildTree(t, root, es)
		rs, err := CredentialsProbe{}.Run(context.Background(), testEnv(t, onRoot(root), withSecrets()))
		if err != nil {
			t.Fatal(err)
		}
		if r := one(t, rs, "secret-in-local-file"); r.Status != Warning || !strings.Contains(r.Reason, "/etc/profile.d/*") {
			t.Errorf("secret-in-local-file %s: %s", r.Status, r.Reason)
		}
	})
	t.Run("users", func(t *testing.T) {
		root := t.TempDir()
		var passwd strings.Builder
		for i := range maxUsers {
			fmt.Fprintf(&passwd, "u%d:x:%d:%d::/nonexistent:/bin/sh\n", i, 20000+i, 20000+i)
		}
		passwd.WriteString("last:x:1000:1000::/home/last:/bin/sh\n")
		buildTree(t, root, []entry{{path: "/etc/passwd", content: passwd.String()}, {path: "/home/last/.bashrc", content: line}})
		rs, err := CredentialsProbe{}.Run(context.Background(), testEnv(t, onRoot(root), withSecrets()))
		if err != nil {
			t.Fatal(err)
		}
		if r := one(t, rs, "secret-in-local-file"); r.Status != Warning || !strings.Contains(r.Reason, "1 more user of /etc/passwd") {
			t.Errorf("secret-in-local-file %s: %s", r.Status, r.Reason)
		}
	})
	t.Run("cloud-init", func(t *testing.T) {
		root := t.TempDir()
		es := []entry{{path: "/var/lib/cloud/instances/i-0abc[1]/user-data.txt", content: "#!/bin/sh\n" + line}}
		buildTree(t, root, es)
		env := testEnv(t, onRoot(root), withSecrets())
		rs := cachedUserData(context.Background(), env)
		if r := one(t, rs, "userdata-cached-secret"); r.Status != Failed || r.Resource != "/var/lib/cloud/instances/i-0abc[1]/user-data.txt" {
			t.Errorf("instance dir i-0abc[1]: %s %s: %s", r.Status, r.Resource, r.Reason)
		}
		os.Remove(filepath.Join(root, "var/lib/cloud/instances/i-0abc[1]/user-data.txt"))
		for i := range maxCacheEntries {
			es = append(es, entry{path: fmt.Sprintf("/var/lib/cloud/instances/i-0abc[1]/scripts/a%04d", i), content: "#!/bin/sh\ntrue\n"})
		}
		buildTree(t, root, append(es[1:], entry{path: "/var/lib/cloud/instances/i-0abc[1]/scripts/z", content: "#!/bin/sh\n" + line}))
		rs = cachedUserData(context.Background(), env)
		if r := one(t, rs, "userdata-cached-secret"); r.Status != Warning || !strings.Contains(r.Reason, "scripts/*") {
			t.Errorf("1,001st script: %s: %s", r.Status, r.Reason)
		}
	})
}

// TestCachedUserDataBounded: a cached user data script of 300 password lines gives at most
// maxFindingsPerFile findings and one WARNING counting the rest.
func TestCachedUserDataBounded(t *testing.T) {
	root := t.TempDir()
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for range 300 {
		b.WriteString("export DB_PASSWORD=" + testenv.RandString(t, 16, testenv.Alnum) + "\n")
	}
	buildTree(t, root, []entry{{path: "/var/lib/cloud/instances/i-0abc/user-data.txt", content: b.String()}})
	rs := cachedUserData(context.Background(), testEnv(t, onRoot(root), withSecrets()))
	failed, warnings := 0, 0
	for _, r := range rs {
		switch r.Status {
		case Failed:
			failed++
		case Warning:
			warnings++
			if !strings.Contains(r.Reason, "more findings not reported") || !strings.Contains(r.Reason, "i-0abc/user-data.txt") {
				t.Errorf("WARNING: %s", r.Reason)
			}
		}
	}
	if failed == 0 || failed > maxFindingsPerFile || warnings != 1 {
		t.Errorf("%d findings, %d warnings; want 1 to %d and 1", failed, maxFindingsPerFile, warnings)
	}
}
