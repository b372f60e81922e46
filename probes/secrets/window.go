package secrets

import (
	"encoding/binary"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/zricethezav/gitleaks/v8/detect"
)

// Why windows: Go's regexp has no literal prefix to skip ahead on for most secret rules, so a
// rule that runs at all walks its NFA over the whole text. A keyword such as "key" or "curl"
// is in nearly every shell history, so a few rules used to cost most of a scan. Every rule
// run through a window is one whose match must contain one of its keywords on the match's
// first line and cannot reach further than a known number of lines past it; running it over
// those lines only finds exactly what it finds over the whole text, at a fraction of the cost.

// narrowGitleaks are the gitleaks rules run on less than every whole text, and why that
// finds all they would find:
//   - generic-api-key: [\w.-]{0,50}? before the keyword (same line), then at most
//     [\s'"]{0,3} and [\x60'"\s=]{0,5} whitespace before the value: 8 newlines, and 1 after;
//     so the lines [keyword line, +10]. And only around a keyword the match can hold: one
//     that [ \t\w.-]{0,20}[\s'"]{0,3} leads to an assignment's first character (assigned).
//   - curl-auth-header, curl-auth-user: "curl" starts the match, then at most 5 continuation
//     lines of [\r\n]{1,2} each and one [ \t\n\r] before the flag: 11 newlines, so the lines
//     [curl line, +12], and only windows that hold what the match must (a header named
//     Authorization, *Key or *Token; -u or --user).
//   - jwt: the match holds ".ey" (two base64url JSON objects), so only texts that do.
//   - vault-service-token: the match starts with its keyword ("hvs." or "s.") and holds no
//     newline but, at most, the last character (which the end of the line's window matches
//     as $ instead, and gitleaks trims from the match anyway); so the keyword's line alone.
var narrowGitleaks = map[string]narrowing{
	"generic-api-key":     {after: 10, assigned: true},
	"curl-auth-header":    {after: 12, also: []string{"authorization", "key", "token"}},
	"curl-auth-user":      {after: 12, also: []string{"-u", "--user"}},
	"jwt":                 {need: []string{".ey"}},
	"vault-service-token": {after: 0},
}

// narrowing says where a rule runs: over whole texts that hold every one of need (need set),
// or around its keywords: the keyword's line and the after lines following, keeping only
// windows holding one of also.
type narrowing struct {
	after int
	also  []string
	need  []string
	// assigned: only keywords followed as generic-api-key's must be (see assignedAfter).
	assigned bool
}

// ruleSet is one narrowed gitleaks rule in its own detector, built on first use.
type ruleSet struct {
	id       string
	narrow   narrowing
	keywords []string // lowercased
	det      func() *detect.Detector
}

func newRuleSet(id string, n narrowing, keywords []string, build func() *detect.Detector) *ruleSet {
	s := &ruleSet{id: id, narrow: n, det: sync.OnceValue(build)}
	for _, k := range keywords {
		s.keywords = append(s.keywords, strings.ToLower(k))
	}
	return s
}

// wholeText is the window that means "run over the whole text".
var wholeText = [2]int{-1, -1}

// windows returns the line ranges the rule runs over in t (none when it cannot match).
func (s *ruleSet) windows(t *text) [][2]int {
	if s.narrow.need != nil {
		for _, n := range s.narrow.need {
			if !t.has(n) {
				return nil
			}
		}
		return [][2]int{wholeText}
	}
	var follow func(string, int) bool
	if s.narrow.assigned {
		follow = assignedAfter
	}
	ws := t.around(t.hitLinesWhere(s.keywords, follow), 0, s.narrow.after)
	if len(s.narrow.also) == 0 {
		return ws
	}
	return slices.DeleteFunc(ws, func(w [2]int) bool {
		start, end := t.lowerSpan(w[0], w[1])
		return !t.spanHasAny(start, end, s.narrow.also)
	})
}

// text is one text being scanned, with its lowercased copy and both line indexes (ToLower
// keeps every newline but may change byte offsets outside ASCII, so lines are the common
// coordinate), and the keywords found in the lowercased copy (on first use).
type text struct {
	s, lower    string
	li, lowerLI *lineIndex
	idx         *keywordIndex
	kw          *hits
	buf         *[]byte // lower's memory, from lowerBufs, until release
}

// lowerBufs are the memory of lowercased texts, used again once a scan of one is done: a
// scan lowercases every file it reads, and fresh memory costs a page fault per 4 KiB.
var lowerBufs = sync.Pool{New: func() any { return new([]byte) }}

func newText(s string, idx *keywordIndex) *text {
	t := &text{s: s, li: newLineIndex(s), idx: idx}
	t.lowerLI = t.li
	t.buf = lowerBufs.Get().(*[]byte)
	lower, ascii := lowerASCII(s, t.buf)
	if !ascii {
		lower = strings.ToLower(s)
		t.lowerLI = newLineIndex(lower)
	}
	t.lower = lower
	return t
}

// release gives the lowercased text's memory back for another text; t is not used after.
func (t *text) release() {
	if t.buf != nil {
		t.lower = ""
		lowerBufs.Put(t.buf)
		t.buf = nil
	}
}

// lowerASCII lowercases s when it is all ASCII (ok false otherwise), in one pass that also
// checks: strings.ToLower writes byte by byte through a Builder after a pass of its own, and
// was a third of the time a shell history took to scan. The result is *into's memory (grown
// when short), good until *into is written again.
func lowerASCII(s string, into *[]byte) (string, bool) {
	if s == "" {
		return "", true
	}
	if cap(*into) < len(s) {
		*into = make([]byte, len(s))
	}
	buf := (*into)[:len(s)]
	// Eight bytes at a time: all ASCII when no high bit is set; then a byte is upper case
	// when adding 0x3f sets its high bit (>= 'A') and adding 0x25 does not (<= 'Z'), and
	// neither sum carries into the next byte.
	const hi = 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if x&hi != 0 {
			return "", false
		}
		upper := (x + 0x3f3f3f3f3f3f3f3f) &^ (x + 0x2525252525252525) & hi
		binary.LittleEndian.PutUint64(buf[i:], x|upper>>2)
	}
	for ; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return "", false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return unsafe.String(unsafe.SliceData(buf), len(buf)), true
}

// hits returns the keywords of the detector's index found in the lowercased text.
func (t *text) hits() *hits {
	if t.kw == nil {
		h := t.idx.find(t.lower)
		t.kw = &h
	}
	return t.kw
}

// has reports whether the lowercased text holds w (lowercase).
func (t *text) has(w string) bool {
	if i, ok := t.idx.num[w]; ok {
		return t.hits().has(i)
	}
	return strings.Contains(t.lower, w)
}

// hasAny reports whether the lowercased text holds one of ws.
func (t *text) hasAny(ws []string) bool {
	for _, w := range ws {
		if t.has(w) {
			return true
		}
	}
	return false
}

// spanHasAny reports whether t.lower[start:end] holds one of ws.
func (t *text) spanHasAny(start, end int, ws []string) bool {
	for _, w := range ws {
		i, ok := t.idx.num[w]
		if !ok || !t.idx.where[i] {
			if strings.Contains(t.lower[start:end], w) {
				return true
			}
			continue
		}
		h := t.hits()
		if !h.has(i) {
			continue
		}
		o, _ := slices.BinarySearchFunc(h.occ, start, func(o occurrence, off int) int { return o.off - off })
		for ; o < len(h.occ) && h.occ[o].off+len(w) <= end; o++ {
			if h.occ[o].word == i {
				return true
			}
		}
	}
	return false
}

// hitLines returns the 0-based lines holding any of kws (lowercase) in the lowercased text,
// ascending, each once.
func (t *text) hitLines(kws []string) []int { return t.hitLinesWhere(kws, nil) }

// hitLinesWhere is hitLines counting only the keywords for which follow (when not nil), given
// the lowercased text and the offset just past the keyword, is true.
func (t *text) hitLinesWhere(kws []string, follow func(lower string, end int) bool) []int {
	var lines []int
	var ids []int
	for _, kw := range kws {
		if i, ok := t.idx.num[kw]; ok && t.idx.where[i] {
			if t.hits().has(i) {
				ids = append(ids, i)
			}
			continue
		}
		for from := 0; ; {
			i := strings.Index(t.lower[from:], kw)
			if i < 0 {
				break
			}
			if follow != nil && !follow(t.lower, from+i+len(kw)) {
				from += i + 1
				continue
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
	if len(ids) > 0 {
		last := -1
		for _, o := range t.hits().occ {
			if slices.Contains(ids, o.word) {
				if follow != nil && !follow(t.lower, o.off+len(t.idx.words[o.word])) {
					continue
				}
				// A keyword holds no newline: the line it starts on holds it.
				if n := t.lowerLI.line(o.off) - 1; n != last {
					lines = append(lines, n)
					last = n
				}
			}
		}
	}
	slices.Sort(lines)
	return slices.Compact(lines)
}

// assignedAfter says whether generic-api-key's regex can go on from a keyword ending at end:
// (?:[ \t\w.-]{0,20})[\s'"]{0,3} and then an assignment, which starts with one of =>:|?,
// (=, >, :{1,3}=, ||, :, =>, ?=, ","). Its classes are ASCII, which lowercasing keeps.
func assignedAfter(lower string, end int) bool {
	for p := end; p <= end+20 && p <= len(lower); p++ {
		for q := p; q <= p+3 && q < len(lower); q++ {
			switch c := lower[q]; {
			case strings.IndexByte("=>:|?,", c) >= 0:
				return true
			case c != ' ' && c != '\t' && c != '\n' && c != '\f' && c != '\r' && c != '\'' && c != '"':
				q = p + 3 // not [\s'"]: no further from p
			}
		}
		if p == len(lower) || !wordy(lower[p]) {
			break // [ \t\w.-] ends here
		}
	}
	return false
}

// wordy reports whether c is in [ \t\w.-].
func wordy(c byte) bool {
	return c == ' ' || c == '\t' || c == '.' || c == '-' || c == '_' ||
		'0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
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

// lowerSpan is span in the lowercased text.
func (t *text) lowerSpan(first, last int) (start, end int) {
	start = t.lowerLI.starts[first]
	end = len(t.lower)
	if last+1 < len(t.lowerLI.starts) {
		end = t.lowerLI.starts[last+1] - 1
	}
	return start, end
}

// around returns the merged line ranges [n-before, n+after] around the given lines
// (ascending).
func (t *text) around(lines []int, before, after int) [][2]int {
	var out [][2]int
	last := len(t.li.starts) - 1
	for _, n := range lines {
		lo, hi := max(n-before, 0), min(n+after, last)
		if k := len(out) - 1; k >= 0 && lo <= out[k][1]+1 {
			out[k][1] = max(out[k][1], hi)
			continue
		}
		out = append(out, [2]int{lo, hi})
	}
	return out
}

// find calls fn with the submatch offsets (relative to the whole text) of every match of re
// in the line ranges ws; ws nil means the whole text.
func (t *text) find(re *regexp.Regexp, ws [][2]int, fn func(m []int)) {
	if ws == nil {
		for _, m := range re.FindAllStringSubmatchIndex(t.s, -1) {
			fn(m)
		}
		return
	}
	for _, w := range ws {
		start, end := t.span(w[0], w[1])
		for _, m := range re.FindAllStringSubmatchIndex(t.s[start:end], -1) {
			for i := range m {
				if m[i] >= 0 {
					m[i] += start
				}
			}
			fn(m)
		}
	}
}

// lines returns each line holding one of kws as a one-line range, or nil (the whole text)
// when whole is set; ok is false when no line holds any.
func (t *text) lines(kws []string, whole bool) (ws [][2]int, ok bool) {
	if !t.hasAny(kws) {
		return nil, false
	}
	if whole {
		return nil, true
	}
	return t.around(t.hitLines(kws), 0, 0), true
}
