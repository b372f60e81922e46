package secrets

import (
	"encoding/binary"
	"maps"
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
	// pair maps two bytes to 1 + the bucket of keywords that start with them, or with the
	// first alone for one-byte keywords (0: none).
	pair    []uint16
	buckets [][]entry  // by bucket
	last    [256][]int // one-byte keywords, by byte: for the text's last byte, which has no pair
	// slow are the keywords found with strings.Index instead: all of them when there are more
	// pairs than buckets (which the default rules are far from).
	slow []int
}

// newKeywordIndex indexes words (lowercase, each once); where[i] says whether to record
// every occurrence of words[i].
func newKeywordIndex(words []string, where []bool) *keywordIndex {
	return buildKeywordIndex(words, where, 1<<16-1)
}

func buildKeywordIndex(words []string, where []bool, maxBuckets int) *keywordIndex {
	k := &keywordIndex{words: words, num: make(map[string]int, len(words)), where: where, pair: make([]uint16, 1<<16)}
	byPair := map[uint16][]int{}
	for i, w := range words {
		k.num[w] = i
		switch len(w) {
		case 0:
			// An empty keyword never matches in gitleaks' trie either.
		case 1:
			for c := range 256 {
				p := uint16(w[0])<<8 | uint16(c)
				byPair[p] = append(byPair[p], i)
			}
			k.last[w[0]] = append(k.last[w[0]], i)
		default:
			p := uint16(w[0])<<8 | uint16(w[1])
			byPair[p] = append(byPair[p], i)
		}
	}
	if len(byPair) > maxBuckets {
		for i, w := range words {
			if w != "" {
				k.slow = append(k.slow, i)
			}
		}
		k.last = [256][]int{}
		return k
	}
	for _, p := range slices.Sorted(maps.Keys(byPair)) {
		var b []entry
		for _, i := range byPair[p] {
			b = append(b, newEntry(i, words[i]))
		}
		k.buckets = append(k.buckets, b)
		k.pair[p] = uint16(len(k.buckets))
	}
	return k
}

// entry is a keyword in a bucket, with its first (up to) 8 bytes as a little-endian number,
// for one compare where a string compare would cost a call.
type entry struct {
	i         int // keyword number
	pre, mask uint64
}

func newEntry(i int, w string) entry {
	var b [8]byte
	n := copy(b[:], w)
	return entry{i: i, pre: binary.LittleEndian.Uint64(b[:]), mask: ^uint64(0) >> (64 - 8*n)}
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
	add := func(i, j int) {
		if k.where[i] {
			h.occ = append(h.occ, occurrence{i, j})
		}
		h.found[i/64] |= 1 << (i % 64)
	}
	pair, buckets, words := k.pair, k.buckets, k.words
	for j := 0; j+1 < len(s); j++ {
		b := pair[uint16(s[j])<<8|uint16(s[j+1])]
		if b == 0 {
			continue
		}
		if j+8 <= len(s) {
			x := uint64(s[j]) | uint64(s[j+1])<<8 | uint64(s[j+2])<<16 | uint64(s[j+3])<<24 |
				uint64(s[j+4])<<32 | uint64(s[j+5])<<40 | uint64(s[j+6])<<48 | uint64(s[j+7])<<56
			for _, e := range buckets[b-1] {
				if x&e.mask == e.pre {
					if w := words[e.i]; len(w) <= 8 || (len(s)-j >= len(w) && s[j+8:j+len(w)] == w[8:]) {
						add(e.i, j)
					}
				}
			}
			continue
		}
		for _, e := range buckets[b-1] {
			if w := words[e.i]; len(s)-j >= len(w) && s[j:j+len(w)] == w {
				add(e.i, j)
			}
		}
	}
	if len(s) > 0 {
		for _, i := range k.last[s[len(s)-1]] {
			add(i, len(s)-1)
		}
	}
	if len(k.slow) > 0 {
		for _, i := range k.slow {
			for from := 0; ; {
				j := strings.Index(s[from:], k.words[i])
				if j < 0 {
					break
				}
				add(i, from+j)
				if !k.where[i] {
					break
				}
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
