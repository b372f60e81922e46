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
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"github.com/spf13/viper"
	"github.com/zricethezav/gitleaks/v8/config"
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
}

// Detector finds secrets. Build it once per process with New (compiling gitleaks' rules takes
// tens of milliseconds) and share it: Scan is safe for concurrent use.
type Detector struct {
	gl *detect.Detector // gitleaks' rules run over the whole text
	// sets are the rules of narrowGitleaks, each in its own detector, run only over the
	// lines around their keywords or only on texts that hold what they need (window.go).
	sets []ruleSet
	// whole turns the windows off (tests compare both ways).
	whole bool
}

// silenceGitleaks turns gitleaks' package-level logger off once: at trace level it would log
// the secrets it skips, and ec2sec logs through slog only.
var silenceGitleaks = sync.OnceFunc(func() { logging.Logger = zerolog.Nop() })

// New compiles the gitleaks default rules. It uses a private viper instance, so it leaves
// viper's global state alone.
func New() (*Detector, error) { return newDetector(true) }

// newDetector is New; tests build it with the stop-word tries too (trie = !strip).
func newDetector(strip bool) (*Detector, error) {
	silenceGitleaks()
	v := viper.New()
	v.SetConfigType("toml")
	if err := v.ReadConfig(strings.NewReader(config.DefaultConfig)); err != nil {
		return nil, fmt.Errorf("gitleaks default config: %w", err)
	}
	var vc config.ViperConfig
	if err := v.Unmarshal(&vc); err != nil {
		return nil, fmt.Errorf("gitleaks default config: %w", err)
	}
	restore := func(config.Config) {}
	if strip {
		restore = stripStopwords(&vc)
	}
	cfg, err := vc.Translate()
	if err != nil {
		return nil, fmt.Errorf("gitleaks default config: %w", err)
	}
	restore(cfg)
	return split(cfg), nil
}

// stripStopwords takes the stop words out of vc's allowlists before Translate and returns
// the function that puts them back into the translated config. Why: for every allowlist with
// stop words Translate builds an Aho-Corasick trie, 9 of the detector's 14 MiB for
// generic-api-key's 1,500 words alone. Without the trie, gitleaks' ContainsStopWord falls
// back to strings.Contains over the (lowercased, deduplicated) list: the same answer, and it
// runs only on a candidate secret, not on the text. Allowlists holding nothing else keep
// theirs (an empty allowlist is an error). A marker in the description pairs them up again.
func stripStopwords(vc *config.ViperConfig) func(config.Config) {
	saved := map[string][]string{}
	strip := func(desc *string, words *[]string, other bool) {
		if len(*words) == 0 || !other {
			return
		}
		key := fmt.Sprintf(" (ec2sec stop words %d)", len(saved))
		seen := map[string]bool{}
		var vals []string
		for _, w := range *words {
			if w = strings.ToLower(w); !seen[w] {
				seen[w] = true
				vals = append(vals, w)
			}
		}
		saved[key] = vals
		*desc += key
		*words = nil
	}
	if a := vc.AllowList; a != nil {
		strip(&a.Description, &a.StopWords, len(a.Regexes)+len(a.Paths)+len(a.Commits) > 0)
	}
	for _, a := range vc.Allowlists {
		strip(&a.Description, &a.StopWords, len(a.Regexes)+len(a.Paths)+len(a.Commits) > 0)
	}
	for i := range vc.Rules {
		r := &vc.Rules[i]
		if a := r.AllowList; a != nil {
			strip(&a.Description, &a.StopWords, len(a.Regexes)+len(a.Paths)+len(a.Commits) > 0)
		}
		for _, a := range r.Allowlists {
			strip(&a.Description, &a.StopWords, len(a.Regexes)+len(a.Paths)+len(a.Commits) > 0)
		}
	}
	put := func(a *config.Allowlist) {
		for key, vals := range saved {
			if d, ok := strings.CutSuffix(a.Description, key); ok {
				a.Description, a.StopWords = d, vals
			}
		}
	}
	return func(cfg config.Config) {
		for _, a := range cfg.Allowlists {
			put(a)
		}
		for _, r := range cfg.Rules {
			for _, a := range r.Allowlists {
				put(a)
			}
		}
	}
}

// split builds the detectors from cfg: one per rule of narrowGitleaks, one for the rest.
// aws-access-token is left out: awsKeys finds every key id, paired with its secret.
func split(cfg config.Config) *Detector {
	d := &Detector{}
	rest := subset(cfg, func(id string) bool { _, narrow := narrowGitleaks[id]; return !narrow && id != "aws-access-token" })
	d.gl = detect.NewDetector(rest)
	for _, id := range cfg.OrderedRules {
		n, ok := narrowGitleaks[id]
		r, found := cfg.Rules[id]
		if !ok || !found {
			continue
		}
		set := ruleSet{id: id, det: detect.NewDetector(subset(cfg, func(x string) bool { return x == id })), narrow: n}
		for _, k := range r.Keywords {
			set.keywords = append(set.keywords, strings.ToLower(k))
		}
		d.sets = append(d.sets, set)
	}
	return d
}

// subset is cfg with only the rules keep keeps.
func subset(cfg config.Config, keep func(id string) bool) config.Config {
	c := cfg
	c.Rules, c.Keywords, c.OrderedRules = map[string]config.Rule{}, map[string]struct{}{}, nil
	for _, id := range cfg.OrderedRules {
		r, ok := cfg.Rules[id]
		if !ok || !keep(id) {
			continue
		}
		c.Rules[id] = r
		c.OrderedRules = append(c.OrderedRules, id)
		for _, k := range r.Keywords {
			c.Keywords[strings.ToLower(k)] = struct{}{}
		}
	}
	return c
}

// ScanData decodes raw (user data, a cached copy of it) and scans every decoded part.
// truncated reports that decoding stopped at MaxDecoded bytes.
func (d *Detector) ScanData(raw []byte, key []byte) (findings []Finding, truncated bool) {
	dec := Decode(raw)
	seen := map[string]bool{}
	for _, p := range dec.Parts {
		for _, f := range d.Scan(p.Text, p.Chain, key) {
			// The same secret in two parts is one secret to fix: report it where first seen.
			if !seen[f.Fingerprint] {
				seen[f.Fingerprint] = true
				findings = append(findings, f)
			}
		}
	}
	return findings, dec.Truncated
}

// Scan finds the secrets in text, a part reached through the decoding chain part ("plain"
// for a file as it is). Findings come sorted by line, then rule.
func (d *Detector) Scan(text, part string, key []byte) []Finding {
	if strings.TrimSpace(text) == "" {
		return nil
	}
	t := newText(text)
	cands := awsKeys(t, d.whole)
	cands = append(cands, ownRules(t, d.whole)...)
	cands = append(cands, d.gitleaks(t)...)
	return finish(cands, text, part, t.li, key)
}

// ScanAWS finds only AWS access keys in text (a process environment): the cheap subset of
// Scan for places where nothing else is looked for.
func (d *Detector) ScanAWS(text, part string, key []byte) []Finding {
	t := newText(text)
	return finish(awsKeys(t, d.whole), text, part, t.li, key)
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
}

// Priorities: our AWS key pairing first, then gitleaks' specific rules, then our specific
// rules, our generic assignment rule, and gitleaks' generic-api-key last.
const (
	prioAWS = iota
	prioGitleaks
	prioOwnSpecific
	prioOwnGeneric
	prioGitleaksGeneric
)

func (d *Detector) gitleaks(t *text) []candidate {
	out := d.gitleaksFindings(d.gl.DetectString(t.s), 0, nil)
	for _, set := range d.sets {
		if d.whole {
			out = d.gitleaksFindings(set.det.DetectString(t.s), 0, out)
			continue
		}
		for _, w := range set.windows(t) {
			if w == wholeText {
				out = d.gitleaksFindings(set.det.DetectString(t.s), 0, out)
				continue
			}
			start, end := t.span(w[0], w[1])
			out = d.gitleaksFindings(set.det.DetectString(t.s[start:end]), w[0], out)
		}
	}
	return out
}

// gitleaksFindings turns gitleaks findings in a text starting at 0-based line first into
// candidates, appended to out.
func (d *Detector) gitleaksFindings(fs []report.Finding, first int, out []candidate) []candidate {
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
		out = append(out, candidate{rule: f.RuleID, prio: prio, line: first + f.StartLine + 1, value: v, claims: []string{v}})
	}
	return out
}

// finish drops candidates that cover a secret a better candidate already covers, then turns
// the rest into findings: fingerprint and redaction computed here, values dropped.
func finish(cands []candidate, text, part string, li *lineIndex, key []byte) []Finding {
	if len(cands) == 0 {
		return nil
	}
	slices.SortStableFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.prio, b.prio), cmp.Compare(a.line, b.line))
	})
	var claimed []string
	blocks := scriptBlocks(text, li)
	out := make([]Finding, 0, len(cands))
	for _, c := range cands {
		if slices.ContainsFunc(c.claims, func(v string) bool { return overlapsAny(v, claimed) }) {
			continue
		}
		claimed = append(claimed, c.claims...)
		f := Finding{
			Rule: c.rule, Kind: c.kind, Line: c.line, Part: part,
			Redacted: Redacted, Fingerprint: Fingerprint(key, c.value),
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
