package secrets

import (
	"slices"
	"strings"
)

// Why windows: Go's regexp has no literal prefix to skip ahead on for most secret rules, so a
// rule that runs at all walks its NFA over the whole text. A keyword such as "key" or "curl"
// is in nearly every shell history, so a few rules used to cost most of a scan. Every rule
// run through a window is one whose match must contain one of its keywords on the match's
// first line and cannot reach further than a known number of lines past it; running it over
// those lines only finds exactly what it finds over the whole text, at a fraction of the cost.

// windowedGitleaks are the gitleaks rules run only around their keywords, with how many
// lines after the keyword's line a match may reach:
//   - generic-api-key: [\w.-]{0,50}? before the keyword (same line), then at most
//     [\s'"]{0,3} and [\x60'"\s=]{0,5} whitespace before the value: 8 newlines, and 1 after.
//   - curl-auth-header, curl-auth-user: "curl" starts the match, then at most 5 continuation
//     lines of [\r\n]{1,2} each, and one [ \t\n\r] before the flag: 11 newlines.
var windowedGitleaks = map[string]int{
	"generic-api-key":  10,
	"curl-auth-header": 12,
	"curl-auth-user":   12,
}

// text is one text being scanned, with its lowercased copy and both line indexes (ToLower
// keeps every newline but may change byte offsets outside ASCII, so lines are the common
// coordinate).
type text struct {
	s, lower    string
	li, lowerLI *lineIndex
}

func newText(s string) *text {
	t := &text{s: s, lower: strings.ToLower(s), li: newLineIndex(s)}
	t.lowerLI = t.li
	if !asciiOnly(s) {
		t.lowerLI = newLineIndex(t.lower)
	}
	return t
}

func asciiOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// hitLines returns the 0-based lines holding any of kws (lowercase) in the lowercased text,
// ascending, each once.
func (t *text) hitLines(kws []string) []int {
	var lines []int
	for _, kw := range kws {
		for from := 0; ; {
			i := strings.Index(t.lower[from:], kw)
			if i < 0 {
				break
			}
			n := t.lowerLI.line(from+i) - 1
			lines = append(lines, n)
			// Skip to the next line: one hit per line is enough.
			if n+1 >= len(t.lowerLI.starts) {
				break
			}
			from = t.lowerLI.starts[n+1]
		}
	}
	slices.Sort(lines)
	return slices.Compact(lines)
}

// span returns the byte range of lines first..last (0-based, inclusive) in the original
// text, without the last line's newline.
func (t *text) span(first, last int) (start, end int) {
	start = t.li.starts[first]
	end = len(t.s)
	if last+1 < len(t.li.starts) {
		end = t.li.starts[last+1] - 1
	}
	return start, end
}

// windows returns the merged line ranges [hit, hit+after] around the lines holding kws.
func (t *text) windows(kws []string, after int) [][2]int {
	var out [][2]int
	last := len(t.li.starts) - 1
	for _, n := range t.hitLines(kws) {
		hi := min(n+after, last)
		if k := len(out) - 1; k >= 0 && n <= out[k][1]+1 {
			out[k][1] = max(out[k][1], hi)
			continue
		}
		out = append(out, [2]int{n, hi})
	}
	return out
}

// mergeWindows sorts line ranges and merges the ones that overlap or touch.
func mergeWindows(ws [][2]int) [][2]int {
	slices.SortFunc(ws, func(a, b [2]int) int { return a[0] - b[0] })
	var out [][2]int
	for _, w := range ws {
		if k := len(out) - 1; k >= 0 && w[0] <= out[k][1]+1 {
			out[k][1] = max(out[k][1], w[1])
			continue
		}
		out = append(out, w)
	}
	return out
}
