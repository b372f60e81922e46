package secrets

import "strings"

// keywordIndex answers which of a set of keywords occur in a text, in one pass: the question
// gitleaks' prefilter asks before it runs a rule. gitleaks asks it with an Aho-Corasick trie
// whose states are 2 KiB each (256 transitions of 8 bytes): about 2 MiB for the default
// rules' 230 keywords, walked with cache misses over every text. Here each keyword is found
// by its first two bytes in a 128 KiB table, then checked whole: the same answer (is the
// keyword a substring of the lowercased text), at a fraction of the memory and time.
type keywordIndex struct {
	words []string
	// pair maps the first two bytes of a keyword to 1 + its bucket in buckets (0: none).
	pair    []uint16
	buckets [][]int // keyword numbers, by bucket
	short   []int   // keywords found with strings.Contains: one byte long, or past 65,535 pairs
}

func newKeywordIndex(words []string) *keywordIndex {
	k := &keywordIndex{words: words, pair: make([]uint16, 1<<16)}
	for i, w := range words {
		switch len(w) {
		case 0:
			// An empty keyword never matches in gitleaks' trie either.
		case 1:
			k.short = append(k.short, i)
		default:
			p := uint16(w[0])<<8 | uint16(w[1])
			if k.pair[p] == 0 && len(k.buckets) == 1<<16-1 {
				k.short = append(k.short, i)
				continue
			}
			if k.pair[p] == 0 {
				k.buckets = append(k.buckets, nil)
				k.pair[p] = uint16(len(k.buckets))
			}
			k.buckets[k.pair[p]-1] = append(k.buckets[k.pair[p]-1], i)
		}
	}
	return k
}

// find calls hit once for each keyword (by number) that occurs in s.
func (k *keywordIndex) find(s string, hit func(i int)) {
	seen := make([]bool, len(k.words))
	for _, i := range k.short {
		if strings.Contains(s, k.words[i]) {
			seen[i] = true
			hit(i)
		}
	}
	pair := k.pair
	for j := 0; j+1 < len(s); j++ {
		b := pair[uint16(s[j])<<8|uint16(s[j+1])]
		if b == 0 {
			continue
		}
		for _, i := range k.buckets[b-1] {
			if !seen[i] && strings.HasPrefix(s[j:], k.words[i]) {
				seen[i] = true
				hit(i)
			}
		}
	}
}
