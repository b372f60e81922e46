package probes

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

// maxSecretFile bounds what is read of one file scanned for secrets.
const maxSecretFile = 1 << 20

// Sources of secret findings, as docs/json.md names them in evidence.
const (
	sourceUserData = "imds-user-data"
	sourceFile     = "file"
	sourceProcess  = "process-env"
)

// secretResult is the FAILED result for one secret: the evidence keys of docs/json.md, and the
// fingerprint so the result's id is the secret's own. It never holds the value.
func secretResult(check string, f secrets.Finding, source, resource, path, reason string) Result {
	r := NewResult(check, Failed, resource, reason)
	r.Evidence = map[string]any{
		"rule": f.Rule, "source": source, "path": path, "line": f.Line, "part": f.Part,
		"redacted": f.Redacted, Fingerprint: f.Fingerprint,
	}
	if f.Target != "" {
		r.Evidence["target_path"] = f.Target // where cloud-init writes it (write_files)
	}
	if f.Detail != "" {
		r.Evidence["detail"] = f.Detail
	}
	if f.Kind == secrets.PasswordHash {
		// Not the password: one step from it, as far as the hash's scheme is weak.
		r.Severity = Medium
	}
	return r
}

// describe says where a finding is, for a reason sentence: "line 4 of part gzip>mime:2",
// and the file cloud-init writes it to.
func describe(f secrets.Finding) string {
	s := fmt.Sprintf("line %d", f.Line)
	if f.Part != "plain" {
		s += " of part " + f.Part
	}
	if f.Target != "" {
		s += " (written to " + f.Target + ")"
	}
	return s
}

// kindWords names what a finding is, for a reason sentence.
func kindWords(f secrets.Finding) string {
	switch f.Kind {
	case secrets.AWSLongLived:
		return "a long-term AWS access key (" + f.Redacted + ")"
	case secrets.AWSSession:
		return "a temporary AWS access key (" + f.Redacted + ")"
	case secrets.PasswordHash:
		return "a password hash, not the password (" + f.Detail + "; whoever reads it can try to crack it offline)"
	}
	if f.Detail != "" {
		return "a secret (rule " + f.Rule + ": " + f.Detail + ")"
	}
	return "a secret (rule " + f.Rule + ")"
}

// unreadable collects paths that could not be read, for a reason sentence.
type unreadable struct {
	n     int
	first string
}

func (u *unreadable) add(path string, err error) {
	u.n++
	if u.first == "" {
		u.first = fmt.Sprintf("%s: %v", path, shortErr(err))
	}
}

func (u unreadable) String() string {
	if u.n == 1 {
		return u.first
	}
	return fmt.Sprintf("%d paths, first %s", u.n, u.first)
}

// shortErr strips the path an fs error repeats.
func shortErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func joinMax(items []string, max int) string {
	if len(items) > max {
		return strings.Join(items[:max], ", ") + fmt.Sprintf(" and %d more", len(items)-max)
	}
	return strings.Join(items, ", ")
}

// skips collects what a probe saw but did not (fully) read, so its results say so: special
// files (FIFOs, sockets, devices) are never opened, links that loop or lead nowhere are not
// followed, and big files are read only up to the limit.
type skips struct {
	special, links, partial []string
}

// linkNotFollowed says whether a link's failure is worth saying (in skips.links): it loops,
// or leads nowhere inside the root; a plain missing file is not.
func linkNotFollowed(err error) bool {
	return errors.Is(err, hostfs.ErrTooManyLinks) || errors.Is(err, fs.ErrNotExist)
}

// String is "" or a clause starting with "; " for a reason sentence.
func (s skips) String() string {
	var b strings.Builder
	if len(s.special) > 0 {
		fmt.Fprintf(&b, "; not opened: %s (FIFO, socket or device)", joinMax(s.special, 3))
	}
	if len(s.links) > 0 {
		fmt.Fprintf(&b, "; links not followed: %s (a loop, or leading nowhere inside the root)", joinMax(s.links, 3))
	}
	if len(s.partial) > 0 {
		fmt.Fprintf(&b, "; only the first %d MiB read of %s", maxSecretFile>>20, joinMax(s.partial, 3))
	}
	return b.String()
}

// annotate adds what was skipped to FAILED results as evidence "not_scanned": when secrets
// were found, no PASSED result is left to say it.
func (s skips) annotate(rs []Result) {
	note := strings.TrimPrefix(s.String(), "; ")
	if note == "" {
		return
	}
	for i := range rs {
		if rs[i].Status == Failed && rs[i].Evidence != nil {
			rs[i].Evidence["not_scanned"] = note
		}
	}
}
