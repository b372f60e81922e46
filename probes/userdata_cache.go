package probes

// The userdata probe's userdata-cached-secret check: user data that cloud-init, EC2Launch and
// EC2Config left on disk, of this instance or of the one an AMI was made from.

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

// cloud-init's per-instance copies of user data, vendor data and the scripts it extracted.
var cloudInitFiles = []string{
	"user-data.txt", "user-data.txt.i", "vendor-data.txt", "vendor-data.txt.i",
	"vendor-data2.txt", "vendor-data2.txt.i", "cloud-config.txt", "vendor-cloud-config.txt",
	"vendor2-cloud-config.txt", "scripts/*", "scripts/vendor/*",
}

// Where the Windows launch agents keep user data scripts (read as data, never run). Paths
// are inside --root, which is the system drive on Windows.
var windowsUserDataGlobs = []string{
	"/Program Files/Amazon/Ec2ConfigService/Scripts/UserScript.*",
	"/ProgramData/Amazon/EC2-Windows/Launch/Scripts/UserScript.*",
	"/Windows/Temp/UserScript.*",
	"/Windows/Temp/EC2Launch*/UserScript.*",
	"/Windows/System32/config/systemprofile/AppData/Local/Temp/EC2Launch*/UserScript.*",
	"/ProgramData/Amazon/EC2Launch/state/*userdata*",
}

const maxCacheEntries = 1000

type cachedFile struct {
	path       string
	instanceID string // "" for Windows locations
}

// cachedUserData is userdata-cached-secret. The steps: list the files (cachedFiles), read
// and scan each (cachedScan.read), then say what they held and what a bound cut
// (cachedScan.results).
func cachedUserData(ctx context.Context, env *Env) []Result {
	current := currentInstanceID(env)
	files, cut := cachedFiles(env, current)
	s := &cachedScan{env: env, current: current}
	for _, cf := range files {
		if ctx.Err() != nil {
			s.bad.add(cf.path, ctx.Err())
			continue
		}
		s.read(cf)
	}
	return s.results(cut)
}

const cachedCheck = "userdata-cached-secret"

// cachedFiles lists the cached user data files: cloud-init's of every instance directory
// (the one of current for /var/lib/cloud/instance), then the Windows launch agents'. cut
// names the globs that matched more than maxCacheEntries: not every file was read.
func cachedFiles(env *Env, current string) (files []cachedFile, cut []string) {
	glob := func(pattern string) []string {
		m, truncated, _ := env.FS.GlobN(pattern, maxCacheEntries)
		if truncated {
			cut = append(cut, pattern)
		}
		return m
	}
	dirs := glob("/var/lib/cloud/instances/*")
	if fi, err := env.FS.Lstat("/var/lib/cloud/instance"); err == nil && fi.IsDir() {
		dirs = append(dirs, "/var/lib/cloud/instance") // a real directory, not the usual link
	}
	for _, dir := range dirs {
		id := path.Base(dir)
		if dir == "/var/lib/cloud/instance" {
			id = current
		}
		for _, name := range cloudInitFiles {
			// The directory's name is data (i-0abc[1] is a name, not a pattern).
			matches := glob(path.Join(hostfs.QuoteMeta(dir), name))
			for _, m := range matches {
				files = append(files, cachedFile{path: m, instanceID: id})
			}
		}
	}
	for _, g := range windowsUserDataGlobs {
		matches := glob(g)
		for _, m := range matches {
			files = append(files, cachedFile{path: m})
		}
	}
	return files, cut
}

// cachedScan adds up what the cached files held, file by file.
type cachedScan struct {
	env          *Env
	current      string // this host's instance id
	out          []Result
	bad          unreadable
	odd          skips
	notes        []string // the decoder's, each with its file
	cloudLimited bool     // a cloud-config document's YAML left unread at a bound
	notReported  int      // findings over the caps
	cutFiles     []string
	scanned      int
}

// read reads one cached file (regular, bounded, never through a link) and scans it.
func (s *cachedScan) read(cf cachedFile) {
	env := s.env
	// Looked at once, and what is read is what was looked at (hostfs.Entry): a file
	// swapped for a link after the look is not read through it.
	entry, err := env.FS.LstatEntry(cf.path)
	if err != nil {
		return // gone
	}
	fi := entry.Info
	switch {
	case fi.IsDir():
		entry.Close()
		return // a directory (scripts/vendor): nothing of its own to read
	case fi.Mode()&fs.ModeSymlink != 0:
		// cloud-init writes these files itself; a link here is not its doing.
		entry.Close()
		s.odd.links = append(s.odd.links, cf.path)
		return
	case !fi.Mode().IsRegular():
		entry.Close()
		s.odd.special = append(s.odd.special, cf.path)
		return
	}
	data, truncated, _, err := entry.ReadInto(nil, maxSecretFile, false)
	entry.Close()
	if err != nil {
		s.bad.add(cf.path, err)
		return
	}
	if truncated {
		s.odd.partial = append(s.odd.partial, cf.path)
	}
	s.scanned++
	got := env.Secrets.ScanInput(data, env.FingerprintKey)
	data = nil
	for _, n := range got.Notes {
		if len(s.notes) < 8 {
			s.notes = append(s.notes, cf.path+": "+n)
		}
	}
	s.cloudLimited = s.cloudLimited || got.Limited
	for i, f := range got.Findings {
		// Bounded as the credentials probe's: per file and per check, the rest counted.
		if i >= maxFindingsPerFile || len(s.out) >= maxResultsPerCheck {
			s.notReported++
			if len(s.cutFiles) == 0 || s.cutFiles[len(s.cutFiles)-1] != cf.path {
				s.cutFiles = append(s.cutFiles, cf.path)
			}
			continue
		}
		r := withNotes(secretResult(cachedCheck, f, sourceFile, cf.path, cf.path, cachedReason(f, cf, s.current, truncated || got.Truncated)), got.Notes)
		if cf.instanceID != "" {
			r.Evidence["instance_id"] = cf.instanceID
			r.Evidence["earlier_instance"] = s.current != "" && cf.instanceID != s.current
		}
		s.out = append(s.out, r)
	}
}

// results is the check's answer: the findings and a WARNING for what a bound cut, or without
// a finding one WARNING, NOT_AVAILABLE or PASSED.
func (s *cachedScan) results(cut []string) []Result {
	var limited string
	if len(cut) > 0 {
		limited = fmt.Sprintf("only the first %d matches of %s were read", maxCacheEntries, joinMax(cut, 3))
	}
	if s.cloudLimited {
		limited = strings.TrimPrefix(limited+"; "+strings.Join(s.notes, "; "), "; ")
	}
	if s.notReported > 0 {
		limited = strings.TrimPrefix(limited+"; "+fmt.Sprintf("%s not reported: at most %d findings per file and %d per check are (in %s)", plural(s.notReported, "more finding", "more findings"), maxFindingsPerFile, maxResultsPerCheck, joinMax(s.cutFiles, 3)), "; ")
	}
	if len(s.out) > 0 {
		s.odd.annotate(s.out)
		if limited != "" {
			s.out = append(s.out, NewResult(cachedCheck, Warning, "", limited+": the rest may hold more"))
		}
		return s.out
	}
	switch {
	case limited != "":
		return []Result{withNotes(NewResult(cachedCheck, Warning, "", fmt.Sprintf("%s; no secret in the %s read%s", limited, plural(s.scanned, "file", "files"), s.odd.String())).With("files", s.scanned), s.notes)}
	case s.bad.n > 0:
		return []Result{NewResult(cachedCheck, NotAvailable, "", "could not read cached user data: "+s.bad.String()+s.odd.String())}
	case s.scanned == 0:
		return []Result{NewResult(cachedCheck, Passed, "", "no cached user data on disk (cloud-init, EC2Launch, EC2Config locations)"+s.odd.String())}
	default:
		return []Result{withNotes(NewResult(cachedCheck, Passed, "", fmt.Sprintf("no secret in %s of cached user data and scripts%s%s", plural(s.scanned, "file", "files"), s.odd.String(), notesClause(s.notes))).
			With("files", s.scanned), s.notes)}
	}
}

func cachedReason(f secrets.Finding, cf cachedFile, current string, truncated bool) string {
	var b strings.Builder
	switch {
	case cf.instanceID == "":
		b.WriteString("a user data script the Windows launch agent left on disk holds ")
	case current != "" && cf.instanceID != current:
		fmt.Fprintf(&b, "the user data cache of an earlier instance (%s, not this instance %s) holds ", cf.instanceID, current)
	default:
		b.WriteString("cloud-init's copy of this instance's user data holds ")
	}
	b.WriteString(kindWords(f))
	b.WriteString(" at ")
	b.WriteString(describe(f))
	if current != "" && cf.instanceID != "" && cf.instanceID != current {
		b.WriteString(": a leftover baked into the image this instance was launched from")
	}
	if truncated {
		b.WriteString(" (the file was only partly scanned: it is larger than the read limit)")
	}
	return b.String()
}

// currentInstanceID is this host's instance id: IMDS's answer when scanning the live host,
// else what cloud-init recorded in the tree (data/instance-id, or the instance link).
func currentInstanceID(env *Env) string {
	if env.Root == "/" && env.Identity.InstanceID != "" {
		return env.Identity.InstanceID
	}
	if b, _, err := env.FS.ReadFile("/var/lib/cloud/data/instance-id", 256); err == nil {
		if id := string(bytes.TrimSpace(b)); id != "" && !strings.ContainsAny(id, "/\x00") {
			return id
		}
	}
	if t, err := env.FS.Readlink("/var/lib/cloud/instance"); err == nil {
		return path.Base(strings.TrimRight(t, "/"))
	}
	return "" // an image or another host's disk: the scanner's own id says nothing of it
}
