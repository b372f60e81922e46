package secrets

import (
	"cmp"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"

	ahocorasick "github.com/BobuSumisu/aho-corasick"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/spf13/viper"
	"github.com/zricethezav/gitleaks/v8/config"
)

// viperDefault decodes gitleaks' default config the way gitleaks does: viper, then
// mapstructure. Tests hold decodeDefault and the lazy detector to it.
func viperDefault(t testing.TB) *config.ViperConfig {
	t.Helper()
	v := viper.New()
	v.SetConfigType("toml")
	if err := v.ReadConfig(strings.NewReader(config.DefaultConfig)); err != nil {
		t.Fatal(err)
	}
	var vc config.ViperConfig
	if err := v.Unmarshal(&vc); err != nil {
		t.Fatal(err)
	}
	return &vc
}

var (
	eagerOnce sync.Once
	eagerDet  *Detector
)

// eagerDetector is the reference: the config decoded by viper, every rule compiled up front,
// gitleaks' own keyword prefilter (as ec2sec did before the lazy detector). strip false keeps
// the stop-word tries too.
func eagerDetector(t testing.TB, strip bool) *Detector {
	t.Helper()
	build := func() *Detector {
		silenceGitleaks()
		d, err := eager(viperDefault(t), strip)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if !strip {
		return build()
	}
	eagerOnce.Do(func() { eagerDet = build() })
	return eagerDet
}

func TestDecodeMatchesViper(t *testing.T) {
	got, err := decodeDefault()
	if err != nil {
		t.Fatal(err)
	}
	want := viperDefault(t)
	//lint:ignore SA1019 gitleaks v8 decodes a config's global [allowlist] table into AllowList and still reads it there; so do we
	if len(want.Rules) < 100 || want.AllowList == nil {
		//lint:ignore SA1019 the global [allowlist] table, as above
		t.Fatalf("viper decoded %d rules, global allowlist %v", len(want.Rules), want.AllowList)
	}
	if !reflect.DeepEqual(got, want) {
		for i := range min(len(got.Rules), len(want.Rules)) {
			if !reflect.DeepEqual(got.Rules[i], want.Rules[i]) {
				t.Errorf("rule %d: go-toml %+v, viper %+v", i, got.Rules[i], want.Rules[i])
			}
		}
		t.Fatalf("go-toml and viper decode gitleaks' default config differently")
	}
	if !canLazy(got) {
		t.Fatal("the default config is not lazy-compilable: New would compile it eagerly")
	}
}

func TestCanLazy(t *testing.T) {
	vc, err := decodeDefault()
	if err != nil {
		t.Fatal(err)
	}
	dup := *vc
	dup.Rules = append(slices.Clone(vc.Rules), vc.Rules[0])
	composite := *vc
	composite.Rules = slices.Clone(vc.Rules)
	composite.Rules[1].Required = append(composite.Rules[1].Required, nil)
	extends := *vc
	extends.Extend.UseDefault = true
	for name, c := range map[string]*config.ViperConfig{"duplicate id": &dup, "composite rule": &composite, "extend": &extends} {
		if canLazy(c) {
			t.Errorf("%s: canLazy true", name)
		}
	}
}

// genMatch writes a random string matching re (anchors and word boundaries aside) to b: texts
// that each rule's regex can fire on.
func genMatch(re *syntax.Regexp, r *rand.Rand, b *strings.Builder) {
	rep := func(lo, hi int) int {
		if hi < 0 || hi > lo+6 {
			hi = lo + 6
		}
		return lo + r.IntN(hi-lo+1)
	}
	switch re.Op {
	case syntax.OpLiteral:
		for _, c := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 && r.IntN(4) == 0 {
				c = unicode.SimpleFold(c)
			}
			b.WriteRune(c)
		}
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return
		}
		var ascii [][2]rune
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], min(re.Rune[i+1], 0x7e)
			if lo < 0x21 && hi >= 0x21 && r.IntN(4) > 0 {
				lo = 0x21
			}
			if lo <= hi {
				ascii = append(ascii, [2]rune{lo, hi})
			}
		}
		if len(ascii) == 0 {
			b.WriteRune(re.Rune[0])
			return
		}
		g := ascii[r.IntN(len(ascii))]
		b.WriteRune(g[0] + rune(r.IntN(int(g[1]-g[0]+1))))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte("abcdefXYZ0123456789"[r.IntN(19)])
	case syntax.OpCapture:
		genMatch(re.Sub[0], r, b)
	case syntax.OpConcat:
		for _, s := range re.Sub {
			genMatch(s, r, b)
		}
	case syntax.OpAlternate:
		genMatch(re.Sub[r.IntN(len(re.Sub))], r, b)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := re.Min, re.Max
		switch re.Op {
		case syntax.OpStar:
			lo, hi = 0, -1
		case syntax.OpPlus:
			lo, hi = 1, -1
		case syntax.OpQuest:
			lo, hi = 0, 1
		}
		for range rep(lo, hi) {
			genMatch(re.Sub[0], r, b)
		}
	}
}

// generatedTexts builds texts in which the rules of gitleaks' default config (all of them:
// the lazy ones, the windowed ones, aws-access-token) have random matches, a few rules a
// text, in random order, between lines of shell history.
func generatedTexts(t testing.TB, seed uint64) []string {
	t.Helper()
	vc, err := decodeDefault()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	var matches []string
	for _, rule := range vc.Rules {
		if rule.Regex == "" {
			continue
		}
		re, err := syntax.Parse(rule.Regex, syntax.Perl)
		if err != nil {
			t.Fatalf("%s: %v", rule.ID, err)
		}
		for range 3 {
			var b strings.Builder
			genMatch(re.Simplify(), r, &b)
			matches = append(matches, b.String())
		}
	}
	r.Shuffle(len(matches), func(i, j int) { matches[i], matches[j] = matches[j], matches[i] })
	filler := []string{"ls -la /tmp", "cd /srv/app && make", "echo done", "export PATH=$PATH:/opt/bin", "# nothing here", ""}
	var texts []string
	for len(matches) > 0 {
		n := min(len(matches), 1+r.IntN(8))
		var b strings.Builder
		for _, m := range matches[:n] {
			b.WriteString(filler[r.IntN(len(filler))] + "\n")
			switch r.IntN(3) {
			case 0:
				b.WriteString(m + "\n")
			case 1:
				b.WriteString("export X=" + m + " # set\n")
			default:
				b.WriteString("  " + m + "\n\n")
			}
		}
		matches = matches[n:]
		texts = append(texts, b.String())
	}
	return texts
}

// corpusTexts returns the user-data corpus, every file as a text.
func corpusTexts(t testing.TB) map[string]string {
	t.Helper()
	files, err := corpusGlob()
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	texts := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts[filepath.Base(f)] = string(b)
	}
	return texts
}

// TestLazyFindsWhatEagerFinds holds the lazy detector (rules compiled as texts need them, our
// keyword prefilter) to the findings of the eager one (viper-decoded config, every rule
// compiled, gitleaks' prefilter), both as Scan reports them and as gitleaks' candidates
// before our rules cover them, on the corpus and on texts built to fire every rule.
func TestLazyFindsWhatEagerFinds(t *testing.T) {
	lazy, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if lazy.eager != nil || lazy.gl == nil {
		t.Fatal("New built an eager detector")
	}
	ref := eagerDetector(t, true)
	texts := corpusTexts(t)
	for i, s := range generatedTexts(t, 1) {
		texts["generated-"+string(rune('a'+i%26))+strings.Repeat("'", i/26)] = s
		texts["upper-"+string(rune('a'+i%26))+strings.Repeat("'", i/26)] = strings.ToUpper(s)
	}
	key := []byte("lazy-test-key")
	gitleaksCands := 0
	for name, s := range texts {
		gitleaksCands += len(sameAsReference(t, name+" (lazy, eager)", lazy, ref, s, key))
	}
	// The texts must make gitleaks report plenty, or the comparison proves little.
	if gitleaksCands < 200 {
		t.Errorf("gitleaks reported %d candidates over %d texts; want at least 200", gitleaksCands, len(texts))
	}
	t.Logf("%d texts, %d gitleaks candidates, %d rules compiled", len(texts), gitleaksCands, compiled(lazy))
}

// compiled counts the rules a lazy detector has compiled.
func compiled(d *Detector) int {
	n := 0
	for i := range d.gl.rules {
		if r := &d.gl.rules[i]; r.rule.RuleID != "" || r.err != nil {
			n++
		}
	}
	return n
}

// TestNoKeywordCompilesNothing: a text holding no rule's keyword compiles no rule that has
// keywords; one holding a keyword compiles the rules it runs, and only those.
func TestNoKeywordCompilesNothing(t *testing.T) {
	d, err := New()
	if err != nil {
		t.Fatal(err)
	}
	var kws []string
	for _, r := range d.gl.vc.Rules {
		for _, k := range r.Keywords {
			kws = append(kws, strings.ToLower(k))
		}
	}
	plain := "echo hi\nmake all\n"
	for _, k := range kws {
		if strings.Contains(strings.ToLower(plain), k) {
			t.Fatalf("%q holds the keyword %q", plain, k)
		}
	}
	d.Scan(plain, "plain", []byte("k"))
	for i := range d.gl.rules {
		r := &d.gl.rules[i]
		if (r.rule.RuleID != "" || r.err != nil) && len(d.gl.vc.Rules[i].Keywords) > 0 {
			t.Errorf("%s compiled by a text without its keywords", r.id)
		}
	}
	// "xoxb" is a keyword of the slack rules only.
	d.Scan("echo xoxb\n", "plain", []byte("k"))
	for i := range d.gl.rules {
		r := &d.gl.rules[i]
		want := slices.Contains(d.gl.vc.Rules[i].Keywords, "xoxb") || len(d.gl.vc.Rules[i].Keywords) == 0
		if got := r.rule.RuleID != "" || r.err != nil; got != want {
			t.Errorf("%s: compiled %v after a text holding xoxb, want %v", r.id, got, want)
		}
	}
	if n := compiled(d); n < 2 {
		t.Errorf("%d rules compiled after xoxb", n)
	}
}

// TestKeywordIndexMatchesTrie holds keywordIndex to the Aho-Corasick trie gitleaks' prefilter
// uses (the same keywords found in the same texts) and to strings.Index (every occurrence of
// our keywords), with its table and with all keywords past the table (the slow path).
func TestKeywordIndexMatchesTrie(t *testing.T) {
	d, err := New()
	if err != nil {
		t.Fatal(err)
	}
	words, where := d.idx.words, d.idx.where
	if len(words) < 250 || !slices.Contains(where, true) || !slices.Contains(where, false) {
		t.Fatalf("index of %d words", len(words))
	}
	trie := ahocorasick.NewTrieBuilder().AddStrings(words).Build()
	texts := slices.Collect(func(yield func(string) bool) {
		for _, s := range corpusTexts(t) {
			yield(s)
		}
	})
	texts = append(texts, generatedTexts(t, 2)...)
	texts = append(texts, "", "s", "sk", "@", "xoxbxoxe-", "----", "tokentoken", strings.Join(words, ""), strings.Join(words, "\x00"))
	for _, idx := range []*keywordIndex{d.idx, buildKeywordIndex(words, where, 3)} {
		for _, s := range texts {
			s = strings.ToLower(s)
			want := map[string]bool{}
			for _, m := range trie.MatchString(s) {
				want[m.MatchString()] = true
			}
			h := idx.find(s)
			got := map[string]bool{}
			for i, w := range words {
				if h.has(i) {
					got[w] = true
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("text %.40q: index found %v, trie %v", s, got, want)
			}
			var wantOcc []occurrence
			for i, w := range words {
				for from := 0; where[i] && w != ""; {
					j := strings.Index(s[from:], w)
					if j < 0 {
						break
					}
					wantOcc = append(wantOcc, occurrence{i, from + j})
					from += j + 1
				}
			}
			slices.SortFunc(wantOcc, func(a, b occurrence) int { return cmp.Or(a.off-b.off, a.word-b.word) })
			gotOcc := slices.Clone(h.occ)
			if !slices.IsSortedFunc(gotOcc, func(a, b occurrence) int { return a.off - b.off }) {
				t.Errorf("text %.40q: occurrences out of order", s)
			}
			slices.SortFunc(gotOcc, func(a, b occurrence) int { return cmp.Or(a.off-b.off, a.word-b.word) })
			if !slices.Equal(gotOcc, wantOcc) {
				t.Errorf("text %.40q: %d occurrences, strings.Index finds %d", s, len(gotOcc), len(wantOcc))
			}
		}
	}
}

// TestLazyConcurrentFirstUse scans from many goroutines with a fresh detector, so rules are
// compiled while others scan (run with -race), and compares with one goroutine's findings.
func TestLazyConcurrentFirstUse(t *testing.T) {
	d, err := New()
	if err != nil {
		t.Fatal(err)
	}
	ref := detector(t)
	texts := slices.Collect(func(yield func(string) bool) {
		for _, s := range corpusTexts(t) {
			yield(s)
		}
	})
	texts = append(texts, generatedTexts(t, 3)...)
	key := []byte("k")
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range texts {
				s := texts[(i*7+g*13)%len(texts)]
				got, _ := d.ScanData([]byte(s), key)
				want, _ := ref.ScanData([]byte(s), key)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("concurrent first use: %+v, want %+v", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestScanAWSOwnIndex: ScanAWS, with the index of awsKeys' keywords only, finds what awsKeys
// finds with the detector's whole index, on the corpus and on texts holding AWS keys.
func TestScanAWSOwnIndex(t *testing.T) {
	d := detector(t)
	texts := slices.Collect(func(yield func(string) bool) {
		for _, s := range corpusTexts(t) {
			yield(s)
		}
	})
	texts = append(texts, generatedTexts(t, 4)...)
	for range 20 {
		id, secret := testenv.FakeAWSKey(t, "ASIA")
		texts = append(texts, "HOME=/root\x00AWS_ACCESS_KEY_ID="+id+"\x00AWS_SECRET_ACCESS_KEY="+secret+"\x00AWS_SESSION_TOKEN="+strings.Repeat("IQoJb3JpZ2luX2VjEJr", 8)+"\x00",
			"x "+id+"\n\n"+secret+"\n")
	}
	key := []byte("k")
	found := 0
	for _, s := range texts {
		got := d.ScanAWS(s, "environ", key)
		want := finish(awsKeys(newText(s, d.idx), false), newText(s, d.idx), Part{Chain: "environ"}, key, nil)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("text %.60q: ScanAWS %+v, awsKeys with the whole index %+v", s, got, want)
		}
		found += len(got)
	}
	if found < 40 {
		t.Errorf("ScanAWS found %d keys; want at least 40", found)
	}
}
