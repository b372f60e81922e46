package probes

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/procfs"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

// CredentialsProbe looks for credentials stored on the host: AWS access keys in users'
// files, other secrets in known config locations, AWS secret keys in process environments,
// and credential files that other users can read.
type CredentialsProbe struct{}

// Name implements Probe.
func (CredentialsProbe) Name() string { return "credentials" }

// IdentityFree tells the scan this probe reads only the host's files and processes, never
// Env.Identity or Env.EC2: it starts without waiting for IMDS.
func (CredentialsProbe) IdentityFree() bool { return true }

// UsesSecrets tells the scan this probe needs Env.Secrets and Env.FingerprintKey.
func (CredentialsProbe) UsesSecrets() bool { return true }

const credDocs = "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#bp-workloads-use-roles"

// Checks implements Probe.
func (CredentialsProbe) Checks() []Check {
	return []Check{
		{
			ID: "cred-long-lived-key", Probe: "credentials", Severity: Critical,
			Title:      "A long-term AWS access key (AKIA…) is stored in a file on the host",
			FailedWhen: "a long-term access key (AKIA…) is stored in a file on disk",
			Practices:  []int{4},
			Exposure:   true,
			Remediation: Remediation{
				Text: "Deactivate and delete the access key in IAM (aws iam update-access-key --status Inactive, then delete-access-key), remove it from the file, and give the workload an instance profile role instead.",
				URL:  credDocs,
			},
		},
		{
			ID: "cred-session-key", Probe: "credentials", Severity: Medium,
			Title:      "A temporary AWS access key (ASIA…) with its secret is stored on disk",
			FailedWhen: "a temporary key (ASIA…) with its secret is stored on disk",
			Practices:  []int{4},
			Exposure:   true,
			Remediation: Remediation{
				Text: "Remove the stored session credentials; let the SDK fetch them from the instance profile, credential_process or IAM Identity Center (sso_*) when needed, and revoke the role's active sessions if they may have leaked.",
				URL:  credDocs,
			},
		},
		{
			ID: "cred-process-env", Probe: "credentials", Severity: High,
			Title:      "A running process holds AWS secret keys in its environment",
			FailedWhen: "a running process holds AWS secret keys in its environment",
			Practices:  []int{4},
			Exposure:   true,
			Remediation: Remediation{
				Text: "Stop passing AWS_SECRET_ACCESS_KEY to the process (unit Environment=, container env, shell profile); let the SDK use the instance profile. Rotate the key, since /proc and crash dumps expose environments.",
				URL:  credDocs,
			},
		},
		{
			ID: "cred-file-permissions", Probe: "credentials", Severity: High,
			Title:      "A file holding credentials is readable by group or other, or owned by another user",
			FailedWhen: "a file holding credentials is readable by group or other, or owned by another user",
			Practices:  []int{4},
			Remediation: Remediation{
				Text: "chmod 600 the file and chown it to the user it belongs to (root for system files); better, remove the credentials from it.",
				URL:  "https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html",
			},
		},
		{
			ID: "secret-in-local-file", Probe: "credentials", Severity: High,
			Title:      "A secret (password, token, private key) is stored in a known config location",
			FailedWhen: "any other secret (gitleaks rules plus ours) in a known config location",
			Practices:  []int{4, 12},
			Exposure:   true,
			Remediation: Remediation{
				Text: "Rotate the secret and move it to AWS Secrets Manager or SSM Parameter Store (SecureString), fetched at run time with the instance role.",
				URL:  "https://docs.aws.amazon.com/secretsmanager/latest/userguide/intro.html",
			},
		},
	}
}

// Bounds: how many passwd entries, directory entries and processes one scan looks at.
const (
	maxUsers      = 10000
	maxDirEntries = 1000
	// Findings reported per file, per check and per scan of this probe. A user can write
	// ten thousand password= lines into a shell history: the first findings name the file
	// to fix, and a WARNING says how many more there were, where.
	maxFindingsPerFile = 20
	maxResultsPerCheck = 100
	maxSecretResults   = 250
	// A file bigger than this is first scanned this far: when that alone holds more than
	// maxFindingsPerFile findings, the rest is not scanned (and the WARNING says so).
	firstLook      = 64 << 10
	maxEnvironSize = 1 << 20
	maxHomeEntries = 4096
)

// Files in a home directory that hold credentials, or commonly end up holding them.
var homeCredFiles = []string{
	".aws/credentials", ".aws/config", ".boto", ".s3cfg", ".passwd-s3fs",
	".docker/config.json", ".netrc", ".git-credentials", ".my.cnf", ".pgpass",
	".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zprofile", ".zshenv",
	".bash_history", ".zsh_history", ".mysql_history", ".psql_history",
}

// System-wide locations, as globs inside --root.
var systemCredGlobs = []string{
	"/etc/environment", "/etc/profile", "/etc/profile.d/*", "/etc/bash.bashrc", "/etc/bashrc",
	"/etc/passwd-s3fs", "/etc/boto.cfg", "/etc/crontab", "/etc/cron.d/*",
	"/etc/systemd/system/*.service", "/etc/systemd/system/*.service.d/*.conf",
	"/etc/default/*", "/etc/sysconfig/*",
}

// Per-user crontabs: owned by their user, not root.
var crontabGlobs = []string{"/var/spool/cron/crontabs/*", "/var/spool/cron/*"}

type passwdUser struct {
	name string
	uid  int
	home string
	more int // on the last user kept: entries after it not looked at (maxUsers)
}

// credFile is one file to look at, with the uid that should own it.
type credFile struct {
	path   string
	owner  int    // expected owner uid
	user   string // whose file it is, for messages ("" for system files: root)
	inHome bool   // inside a user's home: never read through a link to another user's file
}

type credState struct {
	env       *Env
	results   []Result
	scanned   int
	bad       unreadable
	skipped   []string // links to other users' files, not read
	odd       skips    // FIFOs, devices, link loops and partly read files, to say so
	permsOK   bool     // the platform tells file owners
	permsRan  int
	unread    []string       // files not looked at: the probe's time ran out first
	cut       map[string]int // findings not reported, by check (caps)
	cutFiles  []string       // files some of whose findings were not reported
	stopped   []string       // files not scanned to their end (too many findings early on)
	limits    []string       // what a limit left out of the look (globs, users, unit files)
	queueFull bool
	perCheck  map[string]int // results kept, by check
	seen      map[string]bool
	queue     []credFile
	// memo holds the findings of every distinct content scanned in this scan: skeleton files
	// (.bashrc, .profile, .aws/config from /etc/skel) are the same in most homes, and the
	// same bytes always give the same findings. Findings hold no secret.
	memoMu sync.Mutex
	memo   map[[sha256.Size]byte][]secrets.Finding
}

// fileScan is what looking at one file found. Files are looked at by several readers at once
// and their scans added up in queue order (merge), so what a scan reports does not depend on
// which reader looked at which file, or when.
type fileScan struct {
	// Before the content is reached: why not.
	missing error // lstat failed for want of permission
	unread  bool  // not looked at: the probe's time ran out
	link    bool  // a link that loops or leads nowhere
	special bool  // a FIFO, socket or device: never opened
	skipped bool  // a link in a home to another user's file: not read
	// Reached: resolved is where the file really is. The same file reached by two paths
	// counts once, for the first in queue order, which alone adds what follows.
	resolved string
	partial  bool  // bigger than maxSecretFile: read in part
	readErr  error // could not be read
	results  []Result
	cut      map[string]int // findings over maxFindingsPerFile, by check
	stopped  int64          // > 0: scanning stopped after this many bytes (too many findings)
	perms    bool           // the permission check ran
	permsOK  bool           // and the platform told the owner
	envFiles []credFile
}

// credReader is one reader's state: the directory of the last file it looked at (most
// files come a few per home).
type credReader struct {
	st      *credState
	dir     *hostfs.Dir
	dirName string
	buf     []byte // every file is read into it, scanned, and done with before the next
	envBuf  []byte // and every process environment into this one
}

func (r *credReader) close() {
	if r.dir != nil {
		r.dir.Close()
	}
}

// Process environments, then credential files, are read by at most maxCredReaders readers
// (no more than GOMAXPROCS), each taking credChunk of them at a time: consecutive files
// share a home, whose directory a reader keeps open.
const (
	maxCredReaders = 2
	credChunk      = 16
)

// Run implements Probe.
func (CredentialsProbe) Run(ctx context.Context, env *Env) ([]Result, error) {
	if env.Secrets == nil {
		return nil, errors.New("no secret detector in the probe environment")
	}
	st := &credState{env: env, seen: map[string]bool{}, memo: map[[sha256.Size]byte][]secrets.Finding{}, cut: map[string]int{}, perCheck: map[string]int{}}
	// Stop starting new files and processes a little before the probe's deadline: the
	// probe then returns what it read (the scan would otherwise abandon it and keep nothing),
	// and only what it had not read is unknown.
	if dl, ok := ctx.Deadline(); ok {
		margin := min(time.Until(dl)/5, 5*time.Second)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-margin))
		defer cancel()
	}
	users, passwdErr := readPasswd(env)
	if n := usersLeftOut(users); n > 0 {
		st.limits = append(st.limits, fmt.Sprintf("the homes of %s of /etc/passwd after the first %d were not looked at", plural(n, "more user", "more users"), maxUsers))
	}
	// Process environments are read by the same readers as the files, before them (on a host
	// with thousands of processes they are half of this probe's time): whichever reader is
	// free takes the next ones, so both finish together. Processes first: a user's files
	// written to be slow to scan cannot leave cred-process-env without an answer.
	pe, procOut := newProcEnvs(env, users) // without a procfs, procOut says so
	st.queue = st.credFiles(users)
	// The first round reads the files and the processes; the next ones the files that units
	// load with EnvironmentFile=, found in the round before.
	for first, done := true, 0; first || done < len(st.queue); first = false {
		batch := st.queue[done:]
		done = len(st.queue)
		var pids []int
		if first && pe != nil {
			pids = pe.all
		}
		files, procs := st.scan(ctx, batch, pe, pids)
		for i, sc := range files {
			st.merge(batch[i], &sc)
		}
		if first && pe != nil {
			procOut = pe.results(pids, procs)
		}
	}
	out := st.results
	fileChecks := []string{"cred-long-lived-key", "cred-session-key", "secret-in-local-file"}
	what := map[string]string{
		"cred-long-lived-key":  "no long-term access key",
		"cred-session-key":     "no temporary access key",
		"secret-in-local-file": "no secret",
	}
	where := fmt.Sprintf("%s of %s", plural(st.scanned, "credential or config file", "credential and config files"), plural(len(users), "user", "users"))
	if passwdErr != nil {
		where += fmt.Sprintf(" (users unknown: %v)", passwdErr)
	}
	if len(st.skipped) > 0 {
		where += fmt.Sprintf("; not read: %s (links or hard links to another user's file)", joinMax(st.skipped, 3))
	}
	where += st.odd.String()
	st.odd.annotate(out)
	var unread string
	if len(st.unread) > 0 {
		unread = fmt.Sprintf("the probe's time ran out before %s of %d could be read (%s)", plural(len(st.unread), "file", "files"), len(st.queue), joinMax(st.unread, 3))
	}
	// One WARNING (or NOT_AVAILABLE) per check says everything a limit cut from its look:
	// findings not reported, files not scanned to their end, files not read at all.
	for _, c := range append(fileChecks, "cred-file-permissions") {
		found := slices.ContainsFunc(out, func(r Result) bool { return r.Check == c })
		var notes []string
		if n := st.cut[c]; n > 0 {
			notes = append(notes, fmt.Sprintf("%s not reported: at most %d findings per file, %d per check and %d per scan are (in %s)", plural(n, "more finding", "more findings"), maxFindingsPerFile, maxResultsPerCheck, maxSecretResults, joinMax(st.cutFiles, 3)))
		}
		if c == "cred-file-permissions" {
			if len(notes) > 0 {
				out = append(out, NewResult(c, Warning, "", notes[0]).With("not_reported", st.cut[c]))
			}
			continue
		}
		if len(st.stopped) > 0 {
			notes = append(notes, fmt.Sprintf("not scanned to the end, after more than %d findings in the first %d KiB: %s", maxFindingsPerFile, firstLook>>10, joinMax(st.stopped, 3)))
		}
		notes = append(notes, st.limits...)
		if unread != "" {
			notes = append(notes, unread)
		}
		switch {
		case len(notes) == 0:
		case unread != "" && !found:
			out = append(out, NewResult(c, NotAvailable, "", fmt.Sprintf("%s; %s in the %s read", strings.Join(notes, "; "), what[c], where)).With("unread", len(st.unread)))
		default:
			r := NewResult(c, Warning, "", strings.Join(notes, "; ")+": more may be there")
			r = r.With("not_reported", st.cut[c]).With("not_scanned_to_end", len(st.stopped)).With("unread", len(st.unread))
			out = append(out, r)
		}
	}
	for _, c := range fileChecks {
		if slices.ContainsFunc(out, func(r Result) bool { return r.Check == c }) {
			continue
		}
		if st.bad.n > 0 {
			out = append(out, NewResult(c, NotAvailable, "", fmt.Sprintf("could not read every credential location (%s); %s in the %s read", st.bad, what[c], where)))
			continue
		}
		out = append(out, NewResult(c, Passed, "", fmt.Sprintf("%s in %s", what[c], where)).With("files", st.scanned))
	}
	if !slices.ContainsFunc(out, func(r Result) bool { return r.Check == "cred-file-permissions" }) {
		switch {
		case !st.permsOK && st.permsRan > 0:
			out = append(out, NewResult("cred-file-permissions", NotAvailable, "", "this platform does not report file owners and modes; ACLs are not checked"))
		case st.permsRan == 0:
			out = append(out, NewResult("cred-file-permissions", Passed, "", "no file holds credentials"))
		default:
			out = append(out, NewResult("cred-file-permissions", Passed, "", fmt.Sprintf("%s with credentials, none readable by group or other or owned by another user", plural(st.permsRan, "file", "files"))))
		}
	}
	return append(out, procOut...), nil
}

// readPasswd parses <root>/etc/passwd: name, uid and home of every entry.
func readPasswd(env *Env) ([]passwdUser, error) {
	b, _, err := env.FS.ReadFile("/etc/passwd", maxSecretFile)
	if err != nil {
		return nil, err
	}
	var users []passwdUser
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		if len(users) == maxUsers {
			// Counted, not kept: the checks say how many users were not looked at.
			users[len(users)-1].more++
			continue
		}
		users = append(users, passwdUser{name: f[0], uid: uid, home: f[5]})
	}
	return users, nil
}

// usersLeftOut is how many passwd entries past maxUsers were not looked at.
func usersLeftOut(users []passwdUser) int {
	if len(users) == 0 {
		return 0
	}
	return users[len(users)-1].more
}

// credFiles lists the files to look at: each user's home files, then system-wide ones.
func (st *credState) credFiles(users []passwdUser) []credFile {
	env := st.env
	var out []credFile
	homes := map[string]bool{}
	for _, u := range users {
		h := path.Clean("/" + u.home)
		switch h {
		case "/", "/nonexistent", "/dev/null", "/var/empty", "/bin", "/sbin", "/usr/sbin", "/usr/bin", "/proc", "/dev":
			continue
		}
		if homes[h] {
			continue
		}
		homes[h] = true
		// One listing per home instead of a lookup per candidate file: most homes hold few
		// of them, and system accounts have no home at all.
		entries, truncated, err := env.FS.ReadDir(h, maxHomeEntries)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				st.bad.add(h, err)
			}
			continue
		}
		present := map[string]bool{}
		for _, e := range entries {
			present[e.Name()] = true
		}
		for _, name := range homeCredFiles {
			first, _, _ := strings.Cut(name, "/")
			if present[first] || truncated { // a huge home: look each candidate up instead
				out = append(out, credFile{path: path.Join(h, name), owner: u.uid, user: u.name, inHome: true})
			}
		}
	}
	for _, g := range systemCredGlobs {
		matches := st.glob(g)
		for _, m := range matches {
			out = append(out, credFile{path: m, owner: 0})
		}
	}
	byName := map[string]passwdUser{}
	for _, u := range users {
		byName[u.name] = u
	}
	for _, g := range crontabGlobs {
		matches := st.glob(g)
		for _, m := range matches {
			if u, ok := byName[path.Base(m)]; ok {
				out = append(out, credFile{path: m, owner: u.uid, user: u.name})
			}
		}
	}
	return out
}

// glob is FS.GlobN with maxDirEntries, noting a pattern that matched more.
func (st *credState) glob(pattern string) []string {
	m, truncated, _ := st.env.FS.GlobN(pattern, maxDirEntries)
	if truncated {
		st.limits = append(st.limits, fmt.Sprintf("only the first %d files of %s were read", maxDirEntries, pattern))
	}
	return m
}

// scan looks at the environments of the processes pids (through pe), then files, with
// up to maxCredReaders readers, and returns what each found, in the order of files and pids.
func (st *credState) scan(ctx context.Context, files []credFile, pe *procEnvs, pids []int) ([]fileScan, []procScan) {
	scans := make([]fileScan, len(files))
	var procs []procScan
	if len(pids) > 0 {
		procs = make([]procScan, len(pids))
	}
	total := len(files) + len(pids)
	var next atomic.Int64
	read := func() {
		r := &credReader{st: st}
		defer r.close()
		for {
			i := int(next.Add(credChunk)) - credChunk
			if i >= total {
				return
			}
			for j := i; j < min(i+credChunk, total); j++ {
				err := ctx.Err()
				switch k := j - len(pids); {
				case k < 0:
					if err != nil {
						procs[j].stopped = err
						continue
					}
					pe.scan(r, pids[j], &procs[j])
				case err != nil:
					scans[k].unread = true
				default:
					r.scanFile(files[k], &scans[k])
				}
			}
		}
	}
	n := min(runtime.GOMAXPROCS(0), maxCredReaders)
	if total <= credChunk {
		n = 1
	}
	var wg sync.WaitGroup
	for range n - 1 {
		wg.Go(read)
	}
	read()
	wg.Wait()
	return scans, procs
}

// merge adds what looking at file f found to the probe's tally, in queue order.
func (st *credState) merge(f credFile, sc *fileScan) {
	switch {
	case sc.unread:
		st.unread = append(st.unread, f.path)
	case sc.missing != nil:
		st.bad.add(f.path, sc.missing)
	case sc.link:
		st.odd.links = append(st.odd.links, f.path)
	case sc.special:
		st.odd.special = append(st.odd.special, f.path)
	case sc.skipped:
		st.skipped = append(st.skipped, f.path)
	}
	if sc.resolved == "" || st.seen[sc.resolved] {
		return
	}
	st.seen[sc.resolved] = true
	if sc.partial {
		st.odd.partial = append(st.odd.partial, f.path)
	}
	if sc.readErr != nil {
		st.bad.add(f.path, sc.readErr)
		return
	}
	st.scanned++
	cut := false
	for c, n := range sc.cut {
		st.cut[c] += n
		cut = true
	}
	for _, r := range sc.results {
		// Per check and per scan: the first in queue order are kept, the rest counted.
		if st.perCheck[r.Check] >= maxResultsPerCheck || len(st.results) >= maxSecretResults {
			st.cut[r.Check]++
			cut = true
			continue
		}
		st.perCheck[r.Check]++
		st.results = append(st.results, r)
	}
	if cut {
		st.cutFiles = append(st.cutFiles, f.path)
	}
	if sc.stopped > 0 {
		st.stopped = append(st.stopped, f.path)
	}
	if sc.perms {
		st.permsRan++
		st.permsOK = st.permsOK || sc.permsOK
	}
	for _, e := range sc.envFiles {
		if len(st.queue) < maxDirEntries*4 {
			st.queue = append(st.queue, e)
		} else if !st.queueFull {
			st.queueFull = true
			st.limits = append(st.limits, fmt.Sprintf("files named by EnvironmentFile= past the first %d files were not read (first: %s)", maxDirEntries*4, e.path))
		}
	}
}

// findingCheck is the check a finding in a file belongs to.
func findingCheck(fd secrets.Finding) string {
	switch fd.Kind {
	case secrets.AWSLongLived:
		return "cred-long-lived-key"
	case secrets.AWSSession:
		return "cred-session-key"
	}
	return "secret-in-local-file"
}

// boundedFindings is findings, bounded for a file written to exhaust the scanner: a file
// longer than firstLook is first scanned that far (to a line's end); when that part alone
// holds more than maxFindingsPerFile findings, they are what the file gives, and stopped
// says how many bytes were scanned. Otherwise the whole file is scanned.
func (st *credState) boundedFindings(data []byte) (fs []secrets.Finding, stopped int64) {
	if len(data) > firstLook {
		end := firstLook
		if i := bytes.LastIndexByte(data[:end], '\n'); i > 0 {
			end = i + 1
		}
		if fs := st.findings(data[:end]); len(fs) > maxFindingsPerFile {
			return fs, int64(end)
		}
	}
	return st.findings(data), 0
}

// findings returns the findings of data, scanned once per distinct content in a scan.
func (st *credState) findings(data []byte) []secrets.Finding {
	sum := sha256.Sum256(data)
	st.memoMu.Lock()
	findings, ok := st.memo[sum]
	st.memoMu.Unlock()
	if ok {
		return findings
	}
	// Two readers may scan the same content at once; both get the same findings. The text
	// is data's memory, not a copy: Scan keeps nothing of it, and data is not written before
	// Scan returns.
	findings = st.env.Secrets.Scan(unsafe.String(unsafe.SliceData(data), len(data)), "plain", st.env.FingerprintKey)
	st.memoMu.Lock()
	st.memo[sum] = findings
	st.memoMu.Unlock()
	return findings
}

// scanFile reads one file (regular, bounded, never through a home's link to another user's
// file) and records in out what it holds.
func (r *credReader) scanFile(f credFile, out *fileScan) {
	env := r.st.env
	// The entry keeps what the look found ready for the read below: one resolution, not two
	// (and files of the same directory share its resolution).
	if dir := path.Dir(f.path); r.dir == nil || dir != r.dirName {
		if r.dir != nil {
			r.dir.Close()
		}
		r.dir, r.dirName = env.FS.OpenDir(dir), dir
	}
	entry, err := r.dir.LstatEntry(path.Base(f.path))
	if err != nil {
		if errors.Is(err, hostfs.ErrTooManyLinks) {
			out.link = true
			return
		}
		if errors.Is(err, fs.ErrPermission) {
			out.missing = err
		}
		return // missing, or a path component that is not a directory: nothing there
	}
	defer entry.Close()
	lfi := entry.Info
	isLink := lfi.Mode()&fs.ModeSymlink != 0
	if !isLink && !lfi.Mode().IsRegular() {
		out.special = !lfi.IsDir() // a FIFO, socket or device is never opened
		return
	}
	// A link as the file itself, or anywhere on the way (a home's .aws linked to another
	// home): the walk LstatEntry did says where the parents lead.
	linked := isLink || entry.Resolved != path.Clean(f.path)
	// Every decision below is taken on the file that was read (its fstat), never on an
	// earlier look: the read is of what was looked at or fails (hostfs.ErrChanged), so a
	// user swapping their file for a link to root's in a loop gets nothing read as theirs.
	data, _, fi, err := entry.ReadInto(r.buf, maxSecretFile, strings.HasSuffix(f.path, "_history"))
	if err != nil {
		switch {
		case isLink && linkNotFollowed(err):
			out.link = true // dangling, or a loop
		case errors.Is(err, hostfs.ErrNotRegular):
			out.special = true
		default:
			out.readErr = err // ErrChanged among them: a skipped file, with its reason
		}
		return
	}
	if data != nil {
		r.buf = data[:0]
	}
	// In a home, another user's file reached through a link, or through a hard link (a
	// second name for root's file), is not the home's owner's: not read. Another user's
	// file with one name, in place, is what cred-file-permissions is for.
	if uid, ok := fileOwner(fi); ok && f.inHome && uid != f.owner && (linked || hardLinked(fi)) {
		out.skipped = true
		why := "a link"
		if !linked {
			why = "a hard link"
		}
		env.Log.Info("not reading "+why+" in a home to another user's file", "path", f.path, "owner_uid", uid, "user", f.user)
		return
	}
	// The same file by two names (links, hard links) counts once: its device and inode, or
	// where the platform does not say, where its name leads.
	resolved, ok := fileID(fi)
	if !ok {
		resolved = entry.Resolved
		if isLink {
			resolved, _ = env.FS.Resolve(f.path)
		}
	}
	out.resolved = resolved
	partly := ""
	if fi.Size() > maxSecretFile {
		out.partial = true
		partly = fmt.Sprintf(" (only %d MiB of the file was read)", maxSecretFile>>20)
	}
	if strings.HasPrefix(f.path, "/etc/systemd/") {
		out.envFiles = environmentFiles(data)
	}
	findings, stopped := r.st.boundedFindings(data)
	out.stopped = stopped
	data = nil
	if len(findings) == 0 {
		return
	}
	if len(findings) > maxFindingsPerFile {
		// Findings come sorted by line: the first ones are kept, the rest counted by check.
		out.cut = map[string]int{}
		for _, fd := range findings[maxFindingsPerFile:] {
			out.cut[findingCheck(fd)]++
		}
		findings = findings[:maxFindingsPerFile]
	}
	whose := "system file"
	if f.user != "" {
		whose = f.user + "'s file"
	}
	for _, fd := range findings {
		check := findingCheck(fd)
		reason := fmt.Sprintf("%s %s holds %s at %s%s", whose, f.path, kindWords(fd), describe(fd), partly)
		out.results = append(out.results, secretResult(check, fd, sourceFile, f.path, f.path, reason))
	}
	out.perms = true
	out.permsOK, out.results = checkPerms(f, fi, out.results)
}

// environmentFiles returns the files a systemd unit loads with EnvironmentFile=, to scan
// next (system files: root's). Specifiers (%h, ...) cannot be resolved and are skipped.
func environmentFiles(unit []byte) []credFile {
	var out []credFile
	for line := range bytes.Lines(unit) {
		k, v, ok := strings.Cut(strings.TrimSpace(string(line)), "=")
		if !ok || strings.TrimSpace(k) != "EnvironmentFile" {
			continue
		}
		for _, p := range strings.Fields(v) {
			p = strings.TrimPrefix(strings.Trim(p, `"'`), "-")
			if strings.HasPrefix(p, "/") && !strings.Contains(p, "%") && len(out) < maxDirEntries*4 {
				out = append(out, credFile{path: path.Clean(p), owner: 0})
			}
		}
	}
	return out
}

// checkPerms reports a file holding credentials that group or other can read, or that
// another user owns, appended to rs. ok says whether the platform told the file's owner.
func checkPerms(f credFile, fi fs.FileInfo, rs []Result) (ok bool, _ []Result) {
	uid, ok := fileOwner(fi)
	if !ok {
		return false, rs
	}
	mode := fi.Mode().Perm()
	var problems []string
	if mode&0o044 != 0 {
		problems = append(problems, fmt.Sprintf("readable by %s (mode %04o)", groupOther(mode), mode))
	}
	if uid != f.owner {
		problems = append(problems, fmt.Sprintf("owned by uid %d, not %s (uid %d)", uid, cmpOr(f.user, "root"), f.owner))
	}
	if len(problems) == 0 {
		return true, rs
	}
	r := NewResult("cred-file-permissions", Failed, f.path, fmt.Sprintf("%s holds credentials and is %s", f.path, strings.Join(problems, " and ")))
	r.Evidence = map[string]any{"path": f.path, "mode": fmt.Sprintf("%04o", mode), "owner_uid": uid, "expected_uid": f.owner}
	return true, append(rs, r)
}

func groupOther(mode fs.FileMode) string {
	switch {
	case mode&0o040 != 0 && mode&0o004 != 0:
		return "group and other"
	case mode&0o040 != 0:
		return "group"
	default:
		return "other"
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// procEnvs looks for AWS secret keys in <proc>/*/environ, a process at a time.
type procEnvs struct {
	env   *Env
	p     procfs.FS
	all   []int
	self  int            // our own pid, when the procfs is the live one
	names map[int]string // user names by uid
}

const envCheck = "cred-process-env"

// newProcEnvs prepares the reading of process environments; without a procfs, or without
// the list of processes, it returns nil and the check's result.
func newProcEnvs(env *Env, users []passwdUser) (*procEnvs, []Result) {
	if env.Proc == "" {
		return nil, []Result{NewResult(envCheck, NotAvailable, "", "no procfs to read process environments from (an offline image, or --proc not given)")}
	}
	table := env.procTable()
	pids, err := table.PIDs()
	if err != nil {
		return nil, []Result{NewResult(envCheck, NotAvailable, "", fmt.Sprintf("could not list processes: %v", err))}
	}
	pe := &procEnvs{env: env, p: table.FS(), all: pids, self: -1, names: map[int]string{}}
	// Our own environment is the caller's business (and holds what the SDK was given); skip
	// it only when this procfs is the live one, where the pid is really us.
	if t, err := os.Readlink(filepath.Join(pe.p.Dir, "self")); err == nil && t == strconv.Itoa(os.Getpid()) {
		pe.self = os.Getpid()
	}
	for _, u := range users {
		if _, ok := pe.names[u.uid]; !ok {
			pe.names[u.uid] = u.name
		}
	}
	return pe, nil
}

// procScan is what reading one process's environment found.
type procScan struct {
	read    bool  // its environment was read
	denied  bool  // permission denied
	stopped error // not looked at: the probe's time was up
	results []Result
}

// scan reads the environment of pid into r's buffer and records its AWS secret keys in out.
func (pe *procEnvs) scan(r *credReader, pid int, out *procScan) {
	if pid == pe.self {
		return
	}
	p := pe.p
	data, _, err := p.Environ(pid, maxEnvironSize, r.envBuf)
	if err != nil {
		out.denied = errors.Is(err, fs.ErrPermission)
		return // exited meanwhile, or a kernel thread
	}
	out.read = true
	r.envBuf = data // one buffer for all environments: nothing below keeps data
	if !bytes.Contains(data, []byte("SECRET_ACCESS_KEY")) && !bytes.Contains(data, []byte("secret_access_key")) {
		return
	}
	text := string(bytes.ReplaceAll(data, []byte{0}, []byte{'\n'}))
	findings := pe.env.Secrets.ScanAWS(text, "environ", pe.env.FingerprintKey)
	for _, f := range findings {
		if f.Rule != "aws-access-key-pair" && f.Rule != "aws-secret-access-key" {
			continue // a key id alone is not a secret
		}
		resource := fmt.Sprintf("/proc/%d/environ", pid)
		exe := p.Exe(pid)
		comm, _ := p.Comm(pid)
		user := ""
		uid := -1
		if s, err := p.ReadStatus(pid); err == nil {
			uid = s.UID
			user = pe.names[uid]
		}
		reason := fmt.Sprintf("process %d (%s, user %s) holds %s in its environment", pid, cmpOr(exe, comm), cmpOr(user, strconv.Itoa(uid)), kindWords(f))
		r := secretResult(envCheck, f, sourceProcess, resource, resource, reason)
		r.Evidence["pid"] = pid
		r.Evidence["exe"] = exe
		r.Evidence["comm"] = comm
		r.Evidence["user"] = user
		r.Evidence["uid"] = uid
		out.results = append(out.results, r)
	}
}

// results adds up what reading the environments of pids found, in pid order.
func (pe *procEnvs) results(pids []int, scans []procScan) []Result {
	var out []Result
	var denied []int
	read := 0
	var stopped error
	for i, sc := range scans {
		if sc.stopped != nil {
			stopped = sc.stopped
			continue
		}
		if sc.denied {
			denied = append(denied, pids[i])
		}
		if sc.read {
			read++
		}
		out = append(out, sc.results...)
	}
	if stopped != nil {
		return append(out, NewResult(envCheck, NotAvailable, "", fmt.Sprintf("stopped after %d of %d processes: %v", read, len(pids), stopped)))
	}
	// Without CAP_SYS_PTRACE a refusal means we lack the privilege to look: say so. With it,
	// a few processes may still be out of reach (an LSM, another user namespace, as for pid 1
	// in some sandboxes): report what was seen and name what was not.
	if len(denied) > 0 && (!haveCapSysPtrace() || len(denied) > read) {
		return append(out, NewResult(envCheck, NotAvailable, "", fmt.Sprintf("could not read the environment of %d of %d processes (permission denied): run as root, or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH", len(denied), len(denied)+read)))
	}
	var unseen string
	if len(denied) > 0 {
		unseen = fmt.Sprintf("; %d could not be read even with CAP_SYS_PTRACE (pids %s)", len(denied), pidList(denied, 10))
	}
	if len(out) == 0 {
		r := NewResult(envCheck, Passed, "", fmt.Sprintf("no AWS secret key in the environment of %s%s", plural(read, "process", "processes"), unseen))
		if len(denied) > 0 {
			r = r.With("unreadable_pids", denied[:min(len(denied), 100)])
		}
		return []Result{r}
	}
	return out
}

// pidList names at most n pids, then how many more.
func pidList(pids []int, n int) string {
	var b strings.Builder
	for i, p := range pids {
		if i == n {
			fmt.Fprintf(&b, " and %d more", len(pids)-n)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
}

// haveCapSysPtrace reports whether this process has CAP_SYS_PTRACE (bit 19) in its effective
// set, read from the live /proc/self/status (our own privileges, whatever --proc says).
func haveCapSysPtrace() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<19) != 0
		}
	}
	return false
}
