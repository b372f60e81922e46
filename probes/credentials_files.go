package probes

// The credentials probe's files: which ones (homes from passwd, system files, crontabs,
// EnvironmentFile= of units), and looking at one (bounded read, links, permissions).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/secrets"
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

// scanFile reads one file (regular, bounded, never through a home's link to another user's
// file) and records in out what it holds.
func (r *credReader) scanFile(f credFile, out *fileScan) {
	env := r.st.env
	entry := r.lookUp(f, out)
	if entry == nil {
		return
	}
	defer entry.Close()
	isLink := entry.Info.Mode()&fs.ModeSymlink != 0
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
	out.addFindings(f, fi, findings, partly)
}

// lookUp looks file f up (lstat, in the reader's open directory) and returns its entry,
// ready to be read; nil when there is nothing to read, out saying why when it matters (a
// link loop, no permission, a FIFO, socket or device).
func (r *credReader) lookUp(f credFile, out *fileScan) *hostfs.Entry {
	// The entry keeps what the look found ready for the read below: one resolution, not two
	// (and files of the same directory share its resolution).
	if dir := path.Dir(f.path); r.dir == nil || dir != r.dirName {
		if r.dir != nil {
			r.dir.Close()
		}
		r.dir, r.dirName = r.st.env.FS.OpenDir(dir), dir
	}
	entry, err := r.dir.LstatEntry(path.Base(f.path))
	if err != nil {
		if errors.Is(err, hostfs.ErrTooManyLinks) {
			out.link = true
			return nil
		}
		if errors.Is(err, fs.ErrPermission) {
			out.missing = err
		}
		return nil // missing, or a path component that is not a directory: nothing there
	}
	lfi := entry.Info
	if lfi.Mode()&fs.ModeSymlink == 0 && !lfi.Mode().IsRegular() {
		entry.Close()
		out.special = !lfi.IsDir() // a FIFO, socket or device is never opened
		return nil
	}
	return entry
}

// addFindings records the findings of file f (fi: the file read) in out: at most
// maxFindingsPerFile results, the rest counted by check, then the permission check.
func (out *fileScan) addFindings(f credFile, fi fs.FileInfo, findings []secrets.Finding, partly string) {
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
