package secrets

import (
	"slices"
	"strings"
)

// keywordIndex finds, in one pass over a lowercased text, which of a set of keywords occur
// and where. Two kinds of keyword share the pass: gitleaks' (whether the text holds one
// decides which rules run, the question gitleaks' own prefilter asks) and ours (rules.go,
// window.go: which lines to run a rule over), which used to cost a strings.Index pass each.
//
// gitleaks asks with an Aho-Corasick trie whose states are 2 KiB each (256 transitions of 8
// bytes): about 2 MiB for the default rules' 230 keywords, walked with cache misses over every
// text. Here a keyword is found by its first two bytes in a 128 KiB table, then checked whole:
// the same answer (is the keyword a substring of the text), at a fraction of the memory and
// time (TestKeywordIndexMatchesTrie holds the two to the same answers).
type keywordIndex struct {
	words []string
	num   map[string]int
	// where marks the keywords whose every occurrence is recorded (ours); for the others the
	// first one is enough.
	where []bool
	one   [256]uint16 // one-byte keywords: 1 + bucket, 0 for none
	// pair maps the first two bytes of a longer keyword to 1 + its bucket (0: none).
	pair    []uint16
	buckets [][]int // keyword numbers, by bucket
	slow    []int   // keywords past the table's 65,535 buckets: found with strings.Index
}

// newKeywordIndex indexes words (lowercase, each once); where[i] says whether to record
// every occurrence of words[i].
func newKeywordIndex(words []string, where []bool) *keywordIndex {
	return buildKeywordIndex(words, where, 1<<16-1)
}

func buildKeywordIndex(words []string, where []bool, maxBuckets int) *keywordIndex {
	k := &keywordIndex{words: words, num: make(map[string]int, len(words)), where: where, pair: make([]uint16, 1<<16)}
	bucket := func(slot *uint16, i int) bool {
		if *slot == 0 {
			if len(k.buckets) >= maxBuckets {
				return false
			}
			k.buckets = append(k.buckets, nil)
			*slot = uint16(len(k.buckets))
		}
		k.buckets[*slot-1] = append(k.buckets[*slot-1], i)
		return true
	}
	for i, w := range words {
		k.num[w] = i
		ok := true
		switch len(w) {
		case 0:
			// An empty keyword never matches in gitleaks' trie either.
		case 1:
			ok = bucket(&k.one[w[0]], i)
		default:
			ok = bucket(&k.pair[uint16(w[0])<<8|uint16(w[1])], i)
		}
		if !ok {
			k.slow = append(k.slow, i)
		}
	}
	return k
}

// hits are the keywords found in one text.
type hits struct {
	found []uint64     // a bit per keyword number
	occ   []occurrence // the recorded occurrences, by offset
}

type occurrence struct{ word, off int }

func (h *hits) has(i int) bool { return h.found[i/64]&(1<<(i%64)) != 0 }

// find returns the keywords in s.
func (k *keywordIndex) find(s string) hits {
	h := hits{found: make([]uint64, (len(k.words)+63)/64)}
	check := func(j int, bucket []int) {
		for _, i := range bucket {
			if k.where[i] {
				if strings.HasPrefix(s[j:], k.words[i]) {
					h.found[i/64] |= 1 << (i % 64)
					h.occ = append(h.occ, occurrence{i, j})
				}
			} else if !h.has(i) && strings.HasPrefix(s[j:], k.words[i]) {
				h.found[i/64] |= 1 << (i % 64)
			}
		}
	}
	one, pair := &k.one, k.pair
	for j := 0; j < len(s); j++ {
		if b := one[s[j]]; b != 0 {
			check(j, k.buckets[b-1])
		}
		if j+1 < len(s) {
			if b := pair[uint16(s[j])<<8|uint16(s[j+1])]; b != 0 {
				check(j, k.buckets[b-1])
			}
		}
	}
	if len(k.slow) > 0 {
		for _, i := range k.slow {
			for from := 0; ; {
				j := strings.Index(s[from:], k.words[i])
				if j < 0 {
					break
				}
				h.found[i/64] |= 1 << (i % 64)
				if !k.where[i] {
					break
				}
				h.occ = append(h.occ, occurrence{i, from + j})
				from += j + 1
			}
		}
		slices.SortStableFunc(h.occ, func(a, b occurrence) int { return a.off - b.off })
	}
	return h
}

// wordSet collects the keywords of an index, each once, numbered in order of arrival.
type wordSet struct {
	words []string
	num   map[string]int
	where []bool
}

// add adds w (lowercased) and returns its number; where records its every occurrence.
func (ws *wordSet) add(w string, where bool) int {
	w = strings.ToLower(w)
	if ws.num == nil {
		ws.num = map[string]int{}
	}
	i, ok := ws.num[w]
	if !ok {
		i = len(ws.words)
		ws.num[w] = i
		ws.words = append(ws.words, w)
		ws.where = append(ws.where, false)
	}
	ws.where[i] = ws.where[i] || where
	return i
}

func (ws *wordSet) index() *keywordIndex { return newKeywordIndex(ws.words, ws.where) }
