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

func cachedUserData(ctx context.Context, env *Env) []Result {
	const check = "userdata-cached-secret"
	current := currentInstanceID(env)
	var files []cachedFile
	var cut []string // globs that matched more than maxCacheEntries: not every file was read
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

	var out []Result
	var bad unreadable
	var odd skips
	var notes []string    // the decoder's, each with its file
	cloudLimited := false // a cloud-config document's YAML left unread at a bound
	notReported := 0      // findings over the caps
	var cutFiles []string
	scanned := 0
	for _, cf := range files {
		if ctx.Err() != nil {
			bad.add(cf.path, ctx.Err())
			continue
		}
		// Looked at once, and what is read is what was looked at (hostfs.Entry): a file
		// swapped for a link after the look is not read through it.
		entry, err := env.FS.LstatEntry(cf.path)
		if err != nil {
			continue // gone
		}
		fi := entry.Info
		switch {
		case fi.IsDir():
			entry.Close()
			continue // a directory (scripts/vendor): nothing of its own to read
		case fi.Mode()&fs.ModeSymlink != 0:
			// cloud-init writes these files itself; a link here is not its doing.
			entry.Close()
			odd.links = append(odd.links, cf.path)
			continue
		case !fi.Mode().IsRegular():
			entry.Close()
			odd.special = append(odd.special, cf.path)
			continue
		}
		data, truncated, _, err := entry.ReadInto(nil, maxSecretFile, false)
		entry.Close()
		if err != nil {
			bad.add(cf.path, err)
			continue
		}
		if truncated {
			odd.partial = append(odd.partial, cf.path)
		}
		scanned++
		got := env.Secrets.ScanInput(data, env.FingerprintKey)
		data = nil
		for _, n := range got.Notes {
			if len(notes) < 8 {
				notes = append(notes, cf.path+": "+n)
			}
		}
		cloudLimited = cloudLimited || got.Limited
		for i, f := range got.Findings {
			// Bounded as the credentials probe's: per file and per check, the rest counted.
			if i >= maxFindingsPerFile || len(out) >= maxResultsPerCheck {
				notReported++
				if len(cutFiles) == 0 || cutFiles[len(cutFiles)-1] != cf.path {
					cutFiles = append(cutFiles, cf.path)
				}
				continue
			}
			r := withNotes(secretResult(check, f, sourceFile, cf.path, cf.path, cachedReason(f, cf, current, truncated || got.Truncated)), got.Notes)
			if cf.instanceID != "" {
				r.Evidence["instance_id"] = cf.instanceID
				r.Evidence["earlier_instance"] = current != "" && cf.instanceID != current
			}
			out = append(out, r)
		}
	}
	var limited string
	if len(cut) > 0 {
		limited = fmt.Sprintf("only the first %d matches of %s were read", maxCacheEntries, joinMax(cut, 3))
	}
	if cloudLimited {
		limited = strings.TrimPrefix(limited+"; "+strings.Join(notes, "; "), "; ")
	}
	if notReported > 0 {
		limited = strings.TrimPrefix(limited+"; "+fmt.Sprintf("%s not reported: at most %d findings per file and %d per check are (in %s)", plural(notReported, "more finding", "more findings"), maxFindingsPerFile, maxResultsPerCheck, joinMax(cutFiles, 3)), "; ")
	}
	if len(out) > 0 {
		odd.annotate(out)
		if limited != "" {
			out = append(out, NewResult(check, Warning, "", limited+": the rest may hold more"))
		}
		return out
	}
	switch {
	case limited != "":
		return []Result{withNotes(NewResult(check, Warning, "", fmt.Sprintf("%s; no secret in the %s read%s", limited, plural(scanned, "file", "files"), odd.String())).With("files", scanned), notes)}
	case bad.n > 0:
		return []Result{NewResult(check, NotAvailable, "", "could not read cached user data: "+bad.String()+odd.String())}
	case scanned == 0:
		return []Result{NewResult(check, Passed, "", "no cached user data on disk (cloud-init, EC2Launch, EC2Config locations)"+odd.String())}
	default:
		return []Result{withNotes(NewResult(check, Passed, "", fmt.Sprintf("no secret in %s of cached user data and scripts%s%s", plural(scanned, "file", "files"), odd.String(), notesClause(notes))).
			With("files", scanned), notes)}
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
