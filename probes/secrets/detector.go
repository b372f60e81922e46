// Package secrets finds secrets in text: the gitleaks v8 default rules (as a library) plus
// ec2sec's own rules for what gitleaks misses in user data and config files (cloud-config
// passwords, chpasswd lists, password arguments, credentials in URLs, and the AWS secret
// access key next to its key id), after undoing the encodings user data comes wrapped in.
//
// A Finding never holds the secret: Scan computes the keyed fingerprint and the redaction
// while it still has the value, then drops it. Nothing here logs.
package secrets

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
	"github.com/zricethezav/gitleaks/v8/report"
)

// Kind says what a finding is, so probes can map it to their checks.
type Kind int

// Kinds of findings.
const (
	// Generic is any secret that is not an AWS access key: a password, a token, a private key.
	Generic Kind = iota
	// AWSLongLived is a long-term AWS access key (AKIA…), with its secret key when found.
	AWSLongLived
	// AWSSession is a temporary AWS access key (ASIA…) with its secret key or session token.
	AWSSession
	// PasswordHash is a crypt(3) password hash (cloud-config passwd, hashed_passwd, chpasswd
	// type hash): not the password, but anyone who reads it can try to crack it offline.
	PasswordHash
)

// Redacted is what Finding.Redacted says of a secret that must not be shown at all.
const Redacted = "<redacted>"

// Finding is one secret found in a text. It holds no part of the secret beyond Redacted.
type Finding struct {
	Rule string // gitleaks rule id or one of ours
	Kind Kind
	Line int    // 1-based, in the decoded text of Part
	Part string // decoding chain, e.g. "plain", "gzip>mime:2", "base64>powershell"
	// Redacted is at most the first 4 and last 4 characters of an AWS access key id, and
	// Redacted (the constant) for anything else.
	Redacted string
	// Fingerprint is a keyed hash (HMAC-SHA256) of the secret: comparable across scans with
	// the same key, not reversible without it.
	Fingerprint string
	// Target is the file cloud-init writes the secret to (a cloud-config write_files path),
	// or "".
	Target string
	// Detail says what the secret is when the rule alone does not: a plaintext password or a
	// password hash, and where cloud-config holds it. Words of ours, never input text.
	Detail string
}

// Detector finds secrets. Build it once per process with New and share it: gitleaks' rules
// are compiled as texts need them and kept (see gitleaks.go). Scan is safe for concurrent use.
type Detector struct {
	gl *lazyRules // gitleaks' rules run over the whole text, compiled on first use
	// eager, when set, runs those rules instead, all compiled, with gitleaks' own prefilter:
	// for a config lazyRules cannot take, and as the reference in tests.
	eager *detect.Detector
	// sets are the rules of narrowGitleaks, each in its own detector, run only over the
	// lines around their keywords or only on texts that hold what they need (window.go).
	sets []*ruleSet
	// idx finds the keywords of gitleaks' rules and of ours in a text, in one pass; awsIdx
	// only those awsKeys looks for (ScanAWS: fewer candidates to check on every byte).
	idx, awsIdx *keywordIndex
	// whole turns the windows off (tests compare both ways).
	whole bool
}

// silenceGitleaks turns gitleaks' package-level logger off once: at trace level it would log
// the secrets it skips, and ec2sec logs through slog only.
var silenceGitleaks = sync.OnceFunc(func() { logging.Logger = zerolog.Nop() })

// New decodes the gitleaks default rules; each is compiled the first time a text needs it.
func New() (*Detector, error) {
	silenceGitleaks()
	vc, err := decodeDefault()
	if err != nil {
		return nil, err
	}
	if !canLazy(vc) {
		return eager(vc, true)
	}
	var ws wordSet
	d := &Detector{gl: newLazyRules(vc, restRule, &ws)}
	for i, r := range vc.Rules {
		if n, ok := narrowGitleaks[r.ID]; ok {
			d.sets = append(d.sets, newRuleSet(r.ID, n, r.Keywords, func() *detect.Detector { return d.gl.narrowDetector(i) }))
		}
	}
	d.idx, d.awsIdx = ourIndex(&ws, d.sets), awsIndex()
	return d, nil
}

// awsIndex indexes the keywords awsKeys looks for.
func awsIndex() *keywordIndex {
	var ws wordSet
	for _, w := range slices.Concat(awsWords, keyIDPrefixes, []string{"secret", "token"}) {
		ws.add(w, true)
	}
	return ws.index()
}

// ourIndex adds our keywords (rules.go, window.go) to ws and indexes it.
func ourIndex(ws *wordSet, sets []*ruleSet) *keywordIndex {
	for _, w := range ownWords() {
		ws.add(w, true)
	}
	for _, s := range sets {
		for _, w := range slices.Concat(s.keywords, s.narrow.also, s.narrow.need) {
			ws.add(w, true)
		}
	}
	return ws.index()
}

// ScanData decodes raw (user data, a cached copy of it) and scans every decoded part.
// truncated reports that decoding stopped at MaxDecoded bytes.
func (d *Detector) ScanData(raw []byte, key []byte) (findings []Finding, truncated bool) {
	s := d.ScanInput(raw, key)
	return s.Findings, s.Truncated
}

// Scanned is what ScanInput made of one input.
type Scanned struct {
	Findings []Finding
	// Truncated: decoding stopped at MaxDecoded bytes, the rest was not scanned.
	Truncated bool
	// Notes say what was read less closely than it could have been (Decoded.Notes).
	Notes []string
	// Limited: a bound left a cloud-config document's YAML unread (Decoded.Limited).
	Limited bool
}

// ScanInput is ScanData, with the decoder's notes.
func (d *Detector) ScanInput(raw []byte, key []byte) Scanned {
	dec := Decode(raw)
	seen := map[string]bool{}
	same := map[string]string{}
	var findings []Finding
	for _, p := range dec.Parts {
		for _, f := range d.scan(p, key, same) {
			// The same secret in two parts is one secret to fix: report it where first seen.
			k := cmp.Or(same[f.Fingerprint], f.Fingerprint)
			if !seen[k] {
				seen[k] = true
				findings = append(findings, f)
			}
		}
	}
	return Scanned{Findings: findings, Truncated: dec.Truncated, Notes: dec.Notes, Limited: dec.Limited}
}

// Scan finds the secrets in text, a part reached through the decoding chain part ("plain"
// for a file as it is). Findings come sorted by line, then rule. Nothing of text is kept once
// Scan returns (the findings hold no part of it): the caller may then reuse its memory.
func (d *Detector) Scan(text, part string, key []byte) []Finding {
	return d.scan(Part{Chain: part, Text: text}, key, nil)
}

// scan is Scan of a decoded part, with what the decoder read of it (cloud-config). same, when
// not nil, gets the fingerprint of a private key's canonical form by its fingerprint.
func (d *Detector) scan(p Part, key []byte, same map[string]string) []Finding {
	if strings.TrimSpace(p.Text) == "" {
		return nil
	}
	t := newText(p.Text, d.idx)
	defer t.release()
	cands := awsKeys(t, d.whole)
	cands = append(cands, ownRules(t, d.whole)...)
	cands = append(cands, d.gitleaks(t)...)
	for _, s := range p.found {
		c := candidate{rule: s.rule, detail: s.detail, prio: prioCloudConfig, line: s.line, value: s.value, claims: []string{s.value}}
		if s.rule == ruleCloudPasswordHash {
			c.kind = PasswordHash
		}
		cands = append(cands, c)
	}
	return finish(cands, t, p, key, same)
}

// ScanAWS finds only AWS access keys in text (a process environment): the cheap subset of
// Scan for places where nothing else is looked for.
func (d *Detector) ScanAWS(text, part string, key []byte) []Finding {
	t := newText(text, d.awsIdx)
	defer t.release()
	return finish(awsKeys(t, d.whole), t, Part{Chain: part}, key, nil)
}

// candidate is a secret before deduplication; value is dropped once fingerprinted.
type candidate struct {
	rule   string
	kind   Kind
	prio   int // lower wins when two candidates cover the same secret
	line   int
	value  string   // what is fingerprinted
	keyID  string   // an AWS access key id, for redaction
	claims []string // every value this candidate covers (key id, secret key, session token)
	detail string   // Finding.Detail
}

// Priorities: our AWS key pairing first, then gitleaks' specific rules, what a cloud-config
// document's YAML says, our specific rules, our generic assignment rule, and gitleaks'
// generic-api-key last.
const (
	prioAWS = iota
	prioGitleaks
	prioCloudConfig
	prioOwnSpecific
	prioOwnGeneric
	prioGitleaksGeneric
)

func (d *Detector) gitleaks(t *text) []candidate {
	var out []candidate
	if d.eager != nil {
		out = d.gitleaksFindings(t, d.eager.DetectString(t.s), 0, nil)
	} else if det := d.gl.detector(t.hits()); det != nil {
		out = d.gitleaksFindings(t, det.DetectString(t.s), 0, nil)
	}
	for _, set := range d.sets {
		ws := [][2]int{wholeText}
		if !d.whole {
			ws = set.windows(t)
		}
		if len(ws) == 0 {
			continue
		}
		det := set.det()
		if det == nil {
			continue
		}
		for _, w := range ws {
			if w == wholeText {
				out = d.gitleaksFindings(t, det.DetectString(t.s), 0, out)
				continue
			}
			start, end := t.span(w[0], w[1])
			out = d.gitleaksFindings(t, det.DetectString(t.s[start:end]), w[0], out)
		}
	}
	// gitleaks reports rules in map order; when two report the same secret on one line (the
	// default config has such pairs: gitlab-pat and gitlab-pat-routable, bittrex-access-key
	// and bittrex-secret-key), finish keeps the first. Ordered by rule, the same one wins
	// every time.
	slices.SortStableFunc(out, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.line, b.line), strings.Compare(a.rule, b.rule))
	})
	return out
}

// gitleaksFindings turns gitleaks findings in t, found in the part starting at 0-based line
// first, into candidates, appended to out.
func (d *Detector) gitleaksFindings(t *text, fs []report.Finding, first int, out []candidate) []candidate {
	for _, f := range fs {
		if f.RuleID == "aws-access-token" {
			continue // awsKeys sees every key id, paired with its secret
		}
		v := strings.TrimSpace(f.Secret)
		if v == "" || strings.Contains(strings.ToUpper(v), "EXAMPLE") {
			continue
		}
		prio := prioGitleaks
		if f.RuleID == "generic-api-key" {
			if placeholder(v) {
				continue
			}
			prio = prioGitleaksGeneric
		}
		out = append(out, candidate{rule: f.RuleID, prio: prio, line: secretLine(t, first+f.StartLine, v), value: v, claims: []string{v}})
	}
	return out
}

// secretLine is the 1-based line of t holding v, a secret gitleaks found in a match that
// starts on 0-based line start. gitleaks gives the line where the match starts, and a match
// may span lines (curl-auth-header starts at "curl", the header is lines below): a finding
// names the line holding the value, where a person looks for it and where another rule
// finding the same value puts it. When the value is not in the text as written (gitleaks
// decoded it), the match's line it is.
func secretLine(t *text, start int, v string) int {
	if start < 0 || start >= len(t.li.starts) {
		return start + 1
	}
	off, end := t.li.starts[start], len(t.s)
	if last := start + maxMatchLines; last < len(t.li.starts) {
		end = t.li.starts[last]
	}
	if i := strings.Index(t.s[off:end], v); i >= 0 {
		return t.li.line(off + i)
	}
	return start + 1
}

// maxMatchLines bounds how far below a match's first line secretLine looks for its value: no
// narrowed rule reaches more than 13 lines (window.go), and a text full of findings must not
// cost a search to its end for each.
const maxMatchLines = 16

// finish drops candidates that cover a secret a better candidate already covers, then turns
// the rest into findings: fingerprint and redaction computed here, values dropped. same, when
// not nil, gets for each private key the keyed hash of its canonical form (without its line
// breaks, written or escaped) by its fingerprint: the same key written as a YAML block and
// read from a quoted string is one secret, reported once.
func finish(cands []candidate, t *text, p Part, key []byte, same map[string]string) []Finding {
	if len(cands) == 0 {
		return nil
	}
	part := p.Chain
	// A write_files path is input text: it goes into evidence only when it holds no value
	// found here (safePath already keeps it to a plain absolute path).
	targets := p.Target != "" || len(p.regions) > 0
	for _, c := range cands {
		for _, v := range c.claims {
			if targets && len(v) >= 4 && (strings.Contains(p.Target, v) || slices.ContainsFunc(p.regions, func(r region) bool { return strings.Contains(r.target, v) })) {
				targets = false
			}
		}
	}
	slices.SortStableFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.prio, b.prio), cmp.Compare(a.line, b.line))
	})
	// Deduplication compares each candidate with the values kept before it: bounded, so a
	// text of ten thousand password= lines costs at most MaxCandidates² comparisons, not the
	// square of its lines. The best (by priority, then line) are kept; a caller that asked
	// for fewer findings than this never sees the difference, and one that gets
	// MaxCandidates findings knows there may be more.
	if len(cands) > MaxCandidates {
		cands = cands[:MaxCandidates]
	}
	var claimed []string
	blocks := scriptBlocks(t.s, t.lower, t.li)
	out := make([]Finding, 0, len(cands))
	for _, c := range cands {
		if slices.ContainsFunc(c.claims, func(v string) bool { return overlapsAny(v, claimed) }) {
			continue
		}
		claimed = append(claimed, c.claims...)
		f := Finding{
			Rule: c.rule, Kind: c.kind, Line: c.line, Part: part,
			Redacted: Redacted, Fingerprint: Fingerprint(key, c.value), Detail: c.detail,
		}
		if same != nil && strings.Contains(c.value, "PRIVATE KEY") {
			same[f.Fingerprint] = Fingerprint(key, keyForm.Replace(c.value))
		}
		if targets {
			f.Target = p.Target
			for _, r := range p.regions {
				if c.line >= r.start && c.line <= r.end {
					f.Target = r.target
				}
			}
		}
		if len(c.keyID) >= 8 {
			f.Redacted = c.keyID[:4] + "..." + c.keyID[len(c.keyID)-4:]
		}
		for _, b := range blocks {
			if c.line >= b.start && c.line <= b.end {
				if part == "plain" {
					f.Part = b.name
				} else {
					f.Part = part + ">" + b.name
				}
			}
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), strings.Compare(a.Rule, b.Rule), strings.Compare(a.Fingerprint, b.Fingerprint))
	})
	return out
}

// MaxCandidates bounds the secrets one Scan looks at (and so the findings it returns).
const MaxCandidates = 1000

// keyForm drops what may break a private key's lines: whitespace, and the escapes a quoted
// YAML or JSON string writes them as.
var keyForm = strings.NewReplacer("\n", "", "\r", "", "\t", "", "\\n", "", "\\r", "", " ", "")

func overlapsAny(v string, claimed []string) bool {
	for _, c := range claimed {
		if v == c {
			return true
		}
		short, long := v, c
		if len(short) > len(long) {
			short, long = long, short
		}
		if len(short) >= 8 && strings.Contains(long, short) {
			return true
		}
	}
	return false
}

// Fingerprint is the keyed hash of a secret that findings carry: the first 16 bytes of
// HMAC-SHA256(key, secret), hex. Without the key it cannot be brute-forced back.
func Fingerprint(key []byte, secret string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// entropy is the Shannon entropy of s in bits per character.
func entropy(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	var h float64
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
