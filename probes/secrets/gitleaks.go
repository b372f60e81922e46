package secrets

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/pelletier/go-toml/v2"
	"github.com/zricethezav/gitleaks/v8/config"
	"github.com/zricethezav/gitleaks/v8/detect"
)

// Why lazy: compiling all of gitleaks' ~220 default rules (regexes, allowlists) took most of
// the 16 ms and 16 MiB that building a detector cost, on every `ec2sec scan`, while a host's
// texts hold the keywords of a few dozen rules at most. So New only decodes the config, and a
// rule is compiled (once, by gitleaks' own Translate, so regex, secret group, entropy and
// allowlists mean what gitleaks says) the first time a text holds one of its keywords. Each
// text is then scanned by a gitleaks detector holding just the rules gitleaks itself would
// have run on it: its detection logic is unchanged, only its prefilter is ours (keywords.go).

// decodeDefault decodes gitleaks' default config as gitleaks does (viper, then mapstructure),
// without their reflection cost: go-toml fills the same struct, keys matched case-insensitively
// (TestDecodeMatchesViper holds the two to the same result).
func decodeDefault() (*config.ViperConfig, error) {
	var vc config.ViperConfig
	if err := toml.Unmarshal([]byte(config.DefaultConfig), &vc); err != nil {
		return nil, fmt.Errorf("gitleaks default config: %w", err)
	}
	return &vc, nil
}

// maxCached bounds the detectors kept for the sets of rules seen so far (each a few KiB):
// when full, the cache starts over.
const maxCached = 64

// lazyRules is gitleaks' config, decoded, with its rules compiled on first use.
type lazyRules struct {
	vc    *config.ViperConfig // as decoded; each rule's part is read by its own compile only
	rules []lazyRule          // vc.Rules, by index
	// kwRules are the rules (of the rest: neither narrow nor aws-access-token) each keyword
	// runs, by the keyword's number in the detector's index; always, those without keywords.
	kwRules [][]int
	always  []int

	// gvc holds vc's global allowlists (the deprecated single one included) and nothing else.
	gvc        config.ViperConfig
	globalOnce sync.Once
	global     []*config.Allowlist // the untargeted global allowlists, compiled
	globalErr  error

	mu    sync.Mutex
	cache map[string]*detect.Detector // by the set of rules, as a bit set
}

type lazyRule struct {
	id    string
	once  sync.Once
	rule  config.Rule
	inert bool // cannot report on a text without a path (see compile)
	err   error
}

// canLazy reports whether the rules of vc can be compiled one by one with the same result as
// all at once: no rule needs another (composite rules), no id is defined twice, and the
// config extends none. gitleaks' default config is such a config; if a new version's is not,
// New compiles everything up front as gitleaks does.
func canLazy(vc *config.ViperConfig) bool {
	if e := vc.Extend; e.Path != "" || e.URL != "" || e.UseDefault || len(e.DisabledRules) > 0 {
		return false
	}
	//lint:ignore SA1019 gitleaks v8 decodes a config's global [allowlist] table into AllowList and still reads it there; so do we
	if vc.AllowList != nil && len(vc.Allowlists) > 0 {
		return false // an error for Translate; let it say so
	}
	seen := map[string]bool{}
	for _, r := range vc.Rules {
		if len(r.Required) > 0 || seen[r.ID] {
			return false
		}
		seen[r.ID] = true
	}
	return true
}

// newLazyRules takes vc's rules; rest says which of them run over whole texts, and ws numbers
// their keywords.
func newLazyRules(vc *config.ViperConfig, rest func(id string) bool, ws *wordSet) *lazyRules {
	g := &lazyRules{vc: vc, rules: make([]lazyRule, len(vc.Rules)), cache: map[string]*detect.Detector{}}
	g.gvc.Allowlists = slices.Clone(vc.Allowlists)
	//lint:ignore SA1019 the global [allowlist] table, as in canLazy
	if vc.AllowList != nil {
		//lint:ignore SA1019 the global [allowlist] table, as in canLazy
		g.gvc.Allowlists = append(g.gvc.Allowlists, vc.AllowList)
	}
	for i, r := range vc.Rules {
		g.rules[i].id = r.ID
		if !rest(r.ID) {
			continue
		}
		if len(r.Keywords) == 0 {
			g.always = append(g.always, i)
			continue
		}
		for _, k := range r.Keywords {
			n := ws.add(k, false)
			for len(g.kwRules) <= n {
				g.kwRules = append(g.kwRules, nil)
			}
			if !slices.Contains(g.kwRules[n], i) {
				g.kwRules[n] = append(g.kwRules[n], i)
			}
		}
	}
	return g
}

// globals returns the global allowlists, compiled on first use.
func (g *lazyRules) globals() ([]*config.Allowlist, error) {
	g.globalOnce.Do(func() {
		var vc config.ViperConfig
		for _, a := range g.gvc.Allowlists {
			if len(a.TargetRules) == 0 {
				c := *a
				vc.Allowlists = append(vc.Allowlists, &c)
			}
		}
		cfg, err := translate(&vc)
		g.global, g.globalErr = cfg.Allowlists, err
	})
	return g.global, g.globalErr
}

// compile compiles rule i (once) and returns it, ok false when it cannot report anything.
func (g *lazyRules) compile(i int) (config.Rule, bool) {
	r := &g.rules[i]
	r.once.Do(func() {
		vc := config.ViperConfig{}
		src := g.vc.Rules[i]
		src.Keywords = slices.Clone(src.Keywords) // Translate lowercases them in place
		src.Allowlists = slices.Clone(src.Allowlists)
		for j, a := range src.Allowlists {
			c := *a // translate marks descriptions and takes stop words out
			src.Allowlists[j] = &c
		}
		if src.AllowList != nil {
			c := *src.AllowList
			src.AllowList = &c
		}
		vc.Rules = append(vc.Rules, src)
		for _, a := range g.gvc.Allowlists {
			if slices.Contains(a.TargetRules, r.id) {
				c := *a
				c.TargetRules = []string{r.id}
				vc.Allowlists = append(vc.Allowlists, &c)
			}
		}
		cfg, err := translate(&vc)
		if err != nil {
			r.err = err
			return
		}
		r.rule = cfg.Rules[r.id]
		// gitleaks checks a rule's path against the fragment's path before anything else, and
		// ec2sec's fragments have none: a rule whose path pattern does not match "" never
		// reports (the default config's pkcs12-file, *.tf, *.yaml rules...).
		r.inert = r.rule.Path != nil && !r.rule.Path.MatchString("")
	})
	return r.rule, r.err == nil && !r.inert
}

// detector returns a gitleaks detector for the rules gitleaks would run on a text holding the
// keywords h, or nil when there are none.
func (g *lazyRules) detector(h *hits) *detect.Detector {
	bits := make([]byte, (len(g.rules)+7)/8)
	found := false
	set := func(i int) {
		if bits[i/8]&(1<<(i%8)) == 0 {
			if _, ok := g.compile(i); ok {
				bits[i/8] |= 1 << (i % 8)
				found = true
			}
		}
	}
	for _, i := range g.always {
		set(i)
	}
	for k, rules := range g.kwRules {
		if len(rules) > 0 && h.has(k) {
			for _, i := range rules {
				set(i)
			}
		}
	}
	if !found {
		return nil
	}
	global, err := g.globals()
	if err != nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if d, ok := g.cache[string(bits)]; ok {
		return d
	}
	cfg := config.Config{Rules: map[string]config.Rule{}, Keywords: map[string]struct{}{}, Allowlists: global}
	for i := range g.rules {
		if bits[i/8]&(1<<(i%8)) != 0 {
			r, _ := g.compile(i)
			// The keywords were checked above; without any, gitleaks runs the rule.
			r.Keywords = nil
			cfg.Rules[r.RuleID] = r
			cfg.OrderedRules = append(cfg.OrderedRules, r.RuleID)
		}
	}
	d := detect.NewDetector(cfg)
	if len(g.cache) >= maxCached {
		clear(g.cache)
	}
	g.cache[string(bits)] = d
	return d
}

// narrowDetector returns a gitleaks detector for rule i alone, keywords kept (it runs over
// windows, see window.go).
func (g *lazyRules) narrowDetector(i int) *detect.Detector {
	r, ok := g.compile(i)
	if !ok {
		return nil
	}
	global, err := g.globals()
	if err != nil {
		return nil
	}
	cfg := config.Config{Rules: map[string]config.Rule{r.RuleID: r}, Keywords: map[string]struct{}{}, OrderedRules: []string{r.RuleID}, Allowlists: global}
	for _, k := range r.Keywords {
		cfg.Keywords[k] = struct{}{}
	}
	return detect.NewDetector(cfg)
}

// translate is vc.Translate() without the stop-word tries (see stripStopwords).
func translate(vc *config.ViperConfig) (config.Config, error) {
	restore := stripStopwords(vc)
	cfg, err := vc.Translate()
	if err != nil {
		return config.Config{}, fmt.Errorf("gitleaks default config: %w", err)
	}
	restore(cfg)
	return cfg, nil
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
	//lint:ignore SA1019 the global [allowlist] table, as in canLazy
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

// eager compiles every rule of vc at once, as gitleaks does, and builds the detectors with
// gitleaks' own prefilter: New's way for a config canLazy refuses, and the reference the lazy
// detector is tested against. strip false keeps the stop-word tries (tests).
func eager(vc *config.ViperConfig, strip bool) (*Detector, error) {
	var cfg config.Config
	var err error
	if strip {
		cfg, err = translate(vc)
	} else {
		cfg, err = vc.Translate()
	}
	if err != nil {
		return nil, fmt.Errorf("gitleaks default config: %w", err)
	}
	d := &Detector{eager: detect.NewDetector(subset(cfg, restRule))}
	for _, id := range cfg.OrderedRules {
		n, ok := narrowGitleaks[id]
		if _, found := cfg.Rules[id]; !ok || !found {
			continue
		}
		det := detect.NewDetector(subset(cfg, func(x string) bool { return x == id }))
		set := newRuleSet(id, n, cfg.Rules[id].Keywords, func() *detect.Detector { return det })
		d.sets = append(d.sets, set)
	}
	d.idx, d.awsIdx = ourIndex(&wordSet{}, d.sets), awsIndex()
	return d, nil
}

// restRule reports the rules run over whole texts: all but narrowGitleaks, and
// aws-access-token (awsKeys finds every key id, paired with its secret).
func restRule(id string) bool {
	_, narrow := narrowGitleaks[id]
	return !narrow && id != "aws-access-token"
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
