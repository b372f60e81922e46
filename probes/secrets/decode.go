package secrets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDecoded bounds what decoding one input may produce in all: a gzip bomb in user data stops
// here, and the scan says so. Scanning costs one to two microseconds of CPU per decoded byte
// (the rules are regexps), so this bounds the time one input costs too: at 16 MiB a 16 KB
// gzip bomb took 20-40 s, enough to time the probe out, more so under the unit's CPU quota.
// EC2 user data is at most 16 KB raw: 1 MiB is 64 times that, more than real scripts compress.
const MaxDecoded = 1 << 20

// maxDepth bounds nesting (base64 of gzip of MIME of ...); real user data nests two or three.
const maxDepth = 8

// Part is one decoded piece of an input: its text and how it was reached, e.g. "gzip>mime:2",
// "cloud-config:write_files[2]>gzip". A plain input is one part with Chain "plain".
type Part struct {
	Chain string
	Text  string
	// Target is the file cloud-init writes this part to (write_files' path), or "".
	Target string
	// found are secrets read from a cloud-config document's YAML, at lines of Text; regions
	// are its lines holding a write_files content as it is, with the file's path.
	found   []cloudSecret
	regions []region
}

// Decoded is what Decode made of an input.
type Decoded struct {
	Parts []Part
	// Truncated reports that decoding stopped at MaxDecoded bytes: the rest was not scanned.
	Truncated bool
	// Notes say what was read less closely than it could have been (a cloud-config
	// document scanned as text only, and why); they hold no input text.
	Notes []string
	// Limited: a bound of the cloud-config reader (size, depth, nodes, parts) left a
	// document's YAML unread, which may hide what only it shows (a base64 write_files).
	// A document that is not YAML at all is noted, not limited.
	Limited bool
}

// Decode undoes what users and tools wrap around user data: whole-body base64 (wrapped or
// not), gzip (bounded by MaxDecoded), MIME multipart as cloud-init writes it (nested, with
// per-part base64 and quoted-printable). It never fails: what cannot be decoded is scanned
// as it is.
func Decode(raw []byte) Decoded {
	d := &decoder{budget: MaxDecoded}
	d.decode(raw, nil, 0)
	return Decoded{Parts: d.parts, Truncated: d.truncated, Notes: d.notes, Limited: d.limited}
}

type decoder struct {
	parts     []Part
	budget    int
	truncated bool
	notes     []string
	limited   bool
	// target is the write_files path of the content being decoded; cloudHint says that the
	// MIME part being decoded is text/cloud-config, whatever its first line.
	target    string
	cloudHint bool
}

// emit adds data as a part; a cloud-config document is then read as cloud-init reads it
// (cloudconfig.go), which may add parts after it.
func (d *decoder) emit(data []byte, chain []string, depth int) {
	c := strings.Join(chain, ">")
	if c == "" {
		c = "plain"
	}
	d.parts = append(d.parts, Part{Chain: c, Text: string(data), Target: d.target})
	hint := d.cloudHint
	d.cloudHint = false
	if depth < maxDepth && (hint || isCloudConfig(data)) {
		d.cloudConfig(len(d.parts)-1, data, chain, depth)
	}
}

func (d *decoder) note(s string) {
	if len(d.notes) < 8 && !slices.Contains(d.notes, s) {
		d.notes = append(d.notes, s)
	}
}

func with(chain []string, step string) []string {
	return append(chain[:len(chain):len(chain)], step)
}

func (d *decoder) decode(data []byte, chain []string, depth int) {
	if depth >= maxDepth {
		d.emit(data, chain, depth)
		return
	}
	if isGzip(data) {
		out, complete := d.gunzip(data)
		if out != nil {
			if !complete {
				d.truncated = true
			}
			d.decode(out, with(chain, "gzip"), depth+1)
			return
		}
	}
	if out, ok := wholeBase64(data); ok {
		d.decode(out, with(chain, "base64"), depth+1)
		return
	}
	if d.multipart(data, chain, depth) {
		return
	}
	d.emit(data, chain, depth)
}

func isGzip(b []byte) bool { return len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b }

// gunzip decompresses at most the remaining budget. complete is false when it stopped at the
// budget or the stream was cut; out is nil when it is not gzip at all.
func (d *decoder) gunzip(data []byte) (out []byte, complete bool) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, false
	}
	defer zr.Close()
	zr.Multistream(true)
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(zr, int64(d.budget)+1))
	if n > int64(d.budget) {
		buf.Truncate(d.budget)
		d.budget = 0
		return buf.Bytes(), false
	}
	d.budget -= int(n)
	if err != nil && buf.Len() == 0 {
		return nil, false
	}
	return buf.Bytes(), err == nil
}

// wholeBase64 decodes data when all of it (but surrounding and line-wrapping whitespace) is
// base64 and the result is text or gzip; anything else is left alone, so a script is never
// mistaken for base64.
func wholeBase64(data []byte) ([]byte, bool) {
	t := bytes.TrimSpace(data)
	if len(t) < 16 {
		return nil, false
	}
	compact := make([]byte, 0, len(t))
	for _, c := range t {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/', c == '=':
			compact = append(compact, c)
		case c == '\n' || c == '\r' || c == ' ' || c == '\t':
		default:
			return nil, false
		}
	}
	out, ok := b64(compact)
	if !ok {
		return nil, false
	}
	if isGzip(out) || looksText(out) {
		return out, true
	}
	return nil, false
}

func b64(compact []byte) ([]byte, bool) {
	s := string(compact)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if out, err := enc.DecodeString(s); err == nil {
			return out, true
		}
	}
	trimmed := strings.TrimRight(s, "=")
	if out, err := base64.RawStdEncoding.DecodeString(trimmed); err == nil {
		return out, true
	}
	return nil, false
}

// looksText reports whether b is mostly printable UTF-8: decoded base64 of a script is, random
// bytes are not.
func looksText(b []byte) bool {
	if len(b) == 0 || !utf8.Valid(b) {
		return false
	}
	bad := 0
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			bad++
		}
	}
	return bad*20 < len(b)
}

// multipart splits a MIME multipart message into its parts, "mime:1", "mime:2", ..., and
// decodes each. It reports false when data is not a multipart message.
func (d *decoder) multipart(data []byte, chain []string, depth int) bool {
	head := data[:min(len(data), 4096)]
	if !bytes.Contains(bytes.ToLower(head), []byte("multipart/")) {
		return false
	}
	msg, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(bytes.TrimLeft(data, " \t\r\n"))))
	if err != nil {
		return false
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return false
	}
	body, err := io.ReadAll(msg.Body) // a slice of data, already in memory
	if err != nil {
		return false
	}
	d.multipartBody(body, params["boundary"], data, chain, depth)
	return true
}

// multipartBody decodes the parts of a multipart body. The parser skips the preamble and the
// epilogue (everything after the first close delimiter, even more parts), stops at a broken
// part header and finds no part when the boundary is missing: then whole, the message the
// body came from, is scanned as it is too, so none of that can hide a secret. (A secret also
// seen in a part is reported there, where it is seen first.) Each part's header is scanned
// as a part of its own, "mime:N>header", as written: the parser takes it apart from the body.
func (d *decoder) multipartBody(body []byte, boundary string, whole []byte, chain []string, depth int) {
	delim := []byte("--" + boundary)
	pre, heads := partHeaders(body, delim)
	epilogue := afterClose(body, delim)
	parts := 0
	defer func() {
		if parts == 0 || len(heads) == 0 || len(bytes.TrimSpace(pre)) > 0 || len(bytes.TrimSpace(epilogue)) > 0 {
			d.emit(whole, chain, depth)
		}
	}()
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for i := 1; ; i++ {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			parts = 0 // a broken part: what follows it is only in whole
			return
		}
		parts++
		step := with(chain, "mime:"+strconv.Itoa(i))
		if i <= len(heads) && len(bytes.TrimSpace(heads[i-1])) > 0 {
			d.emit(heads[i-1], with(step, "header"), maxDepth) // a header is never cloud-config
		}
		b, err := io.ReadAll(io.LimitReader(p, int64(d.budget)+1))
		if len(b) > d.budget {
			b, d.truncated = b[:d.budget], true
		}
		d.budget -= len(b)
		if err != nil && !errors.Is(err, io.EOF) && len(b) == 0 {
			continue
		}
		b = transferDecode(p.Header, b)
		mt, params, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		// Nested multiparts count against maxDepth too: past it the part is scanned as it is.
		if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" && depth+1 < maxDepth {
			d.multipartBody(b, params["boundary"], b, step, depth+1)
			continue
		}
		d.cloudHint = mt == "text/cloud-config"
		d.decode(b, step, depth+1)
		d.cloudHint = false
	}
}

// afterClose is what follows the first close delimiter ("--boundary--" at the start of a
// line) in body, where the parser stops; nil when there is none.
func afterClose(body, delim []byte) []byte {
	closing := append(delim[:len(delim):len(delim)], "--"...)
	for off := 0; off < len(body); {
		i := bytes.Index(body[off:], closing)
		if i < 0 {
			return nil
		}
		at := off + i
		if at == 0 || body[at-1] == '\n' {
			return body[at+len(closing):]
		}
		off = at + 1
	}
	return nil
}

// partHeaders finds the preamble of body (what comes before the first delimiter line, all of
// body when there is none) and each part's header as written, in part order: the lines after
// a delimiter line up to the empty line. The parser's own header (textproto.MIMEHeader) has
// names case-folded and folded lines joined, so a secret could differ there from the one in
// the message. Lines are read as mime/multipart reads them: the line ending is "\r\n" unless
// the first delimiter line ends in "\n", a line that merely starts like a delimiter
// ("--boundaryX") is preamble or body, and a close delimiter line ends the parts.
func partHeaders(body, delim []byte) (preamble []byte, heads [][]byte) {
	preamble = body
	nl := "\r\n"
	for off := 0; off < len(body); {
		line := nextLine(body[off:])
		lineStart := off
		off += len(line)
		if !bytes.HasPrefix(line, delim) {
			continue
		}
		rest := string(bytes.TrimLeft(line[len(delim):], " \t"))
		if len(heads) == 0 && rest == "\n" {
			nl = "\n"
		}
		if after, ok := strings.CutPrefix(rest, "--"); ok {
			if after = strings.TrimLeft(after, " \t"); after == "" || after == nl {
				break
			}
		}
		if rest != nl {
			continue
		}
		if len(heads) == 0 {
			preamble = body[:lineStart]
		}
		start := off
		for off < len(body) {
			l := nextLine(body[off:])
			if string(l) == "\n" || string(l) == "\r\n" {
				break
			}
			off += len(l)
		}
		heads = append(heads, body[start:off])
	}
	return preamble, heads
}

// nextLine is b up to and with its first '\n', or all of b.
func nextLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1]
	}
	return b
}

// transferDecode undoes a part's Content-Transfer-Encoding; a part that does not decode is
// scanned as it is.
func transferDecode(h textproto.MIMEHeader, b []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		compact := bytes.Map(func(r rune) rune {
			if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, b)
		if out, ok := b64(compact); ok {
			return out
		}
	case "quoted-printable":
		if out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b))); err == nil {
			return out
		}
	}
	return b
}

// block is a <powershell> or <script> section of Windows user data, as 1-based line numbers.
type block struct {
	name       string
	start, end int
}

// scriptBlocks finds the <powershell>…</powershell> and <script>…</script> sections that
// EC2Launch and EC2Config run, so findings inside them name the block in their part. lower
// is text lowercased.
func scriptBlocks(text, lower string, lines *lineIndex) []block {
	var out []block
	for _, name := range []string{"powershell", "script"} {
		open, closing := "<"+name+">", "</"+name+">"
		from := 0
		for {
			i := strings.Index(lower[from:], open)
			if i < 0 {
				break
			}
			i += from
			j := strings.Index(lower[i:], closing)
			end := len(text)
			if j >= 0 {
				end = i + j
			}
			out = append(out, block{name: name, start: lines.line(i), end: lines.line(end)})
			if j < 0 {
				break
			}
			from = end + len(closing)
		}
	}
	return out
}

// lineIndex maps byte offsets of a text to 1-based line numbers.
type lineIndex struct{ starts []int }

func newLineIndex(text string) *lineIndex {
	li := &lineIndex{starts: make([]int, 1, strings.Count(text, "\n")+1)}
	for off := 0; ; {
		i := strings.IndexByte(text[off:], '\n')
		if i < 0 {
			return li
		}
		off += i + 1
		li.starts = append(li.starts, off)
	}
}

// line returns the 1-based line of byte offset off.
func (li *lineIndex) line(off int) int {
	lo, hi := 0, len(li.starts)
	for lo < hi {
		m := (lo + hi) / 2
		if li.starts[m] <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
