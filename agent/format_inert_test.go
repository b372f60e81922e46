package agent

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// hostileText is what a local user or a hostile IMDS puts where the table prints it: a window
// title, a screen clear, a clipboard write (OSC 52), a CSI as a C1 byte and as a lone byte,
// a bidi override, backspaces and a carriage return that hide what came before.
var hostileText = []string{
	"\x1b]0;owned\x07", "\x1b[2J\x1b[H", "\x1b]52;c;ZWNobyBwd25lZA==\x07", "\u009b31m", "\x9b1J",
	"\u202egnp.exe", "ok\b\b\bFAIL", "real\rfake", "bell\x07", "del\x7f", "\x00nul", "nel\u0085x",
}

// TestTableIsInert: every field of the table, header included, has its control characters
// escaped; no byte of the output but newline is a control (without color), none is a C1
// control or a byte that is not UTF-8.
func TestTableIsInert(t *testing.T) {
	evil := strings.Join(hostileText, "|")
	id := metadata.Identity{InstanceID: "i-0abc" + evil, AccountID: "1234" + evil, Region: "us-east-1" + evil, AMIID: "ami-" + evil}
	r := &Report{
		ScannedAt: time.Unix(0, 0).UTC(),
		Host:      hostOf(id, Facts{}),
		identity:  id,
		Results: []probes.Result{
			{Check: "cred-process-env" + evil, Status: probes.Failed, Severity: probes.High, Resource: "/proc/1/environ" + evil, Reason: "process 1 (/usr/bin/" + evil + ") holds a key"},
			{Check: "x", Status: probes.NotAvailable, Resource: evil, Reason: evil},
		},
	}
	var out bytes.Buffer
	if err := WriteTable(&out, r, false); err != nil {
		t.Fatal(err)
	}
	checkInert(t, out.String(), "\n")
	for _, want := range []string{`\x1b]0;owned\x07`, `\u009b31m`, `\x9b1J`, `\u202egnp.exe`, `ok\x08\x08\x08FAIL`, "real fake"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table does not show %s:\n%s", want, out.String())
		}
	}
	// Off EC2 the header shows the identity's reason, which may quote an endpoint's answer.
	r.identity = metadata.Identity{Reason: "IMDS said " + evil}
	r.Host = hostOf(r.identity, Facts{})
	out.Reset()
	if err := WriteTable(&out, r, true); err != nil {
		t.Fatal(err)
	}
	// With color, ESC appears only as the start of our own SGR sequences.
	checkInert(t, stripSGR(out.String()), "\n")
}

// checkInert fails on any control character of s but those in allowed.
func checkInert(t *testing.T, s, allowed string) {
	t.Helper()
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || ((r < 0x20 || (r >= 0x7f && r <= 0xa0)) && !strings.ContainsRune(allowed, r)) || r == 0x202e {
			t.Fatalf("raw control %U at byte %d of the table:\n%q", r, i, s)
		}
		i += n
	}
}

// stripSGR removes the table's own color codes (ESC [ digits and ; m).
func stripSGR(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] == ';' || (s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			if j < len(s) && s[j] == 'm' {
				i = j
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestInert(t *testing.T) {
	for in, want := range map[string]string{
		"plain /home/u/.aws/credentials": "plain /home/u/.aws/credentials",
		"é ü 日本":                         "é ü 日本",
		"a\x1bb":                         `a\x1bb`,
		"\u0085\u009f":                   `\u0085\u009f`,
		"\xff\xfe":                       `\xff\xfe`,
		"a\nb\tc":                        `a\x0ab\x09c`,
		"\u202eabc\u2066":                `\u202eabc\u2066`,
	} {
		if got := inert(in); got != want {
			t.Errorf("inert(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzInert: whatever the text, what inert makes of it is valid UTF-8 without a single
// control character, bidi override or byte that is not UTF-8; clean text is left as it is.
func FuzzInert(f *testing.F) {
	for _, s := range hostileText {
		f.Add(s)
	}
	f.Add("plain text é")
	f.Fuzz(func(t *testing.T, s string) {
		out := inert(s)
		if !utf8.ValidString(out) {
			t.Fatalf("inert(%q) = %q: not UTF-8", s, out)
		}
		clean := true
		for i := 0; i < len(out); {
			r, n := utf8.DecodeRuneInString(out[i:])
			if controlRune(r, n) {
				t.Fatalf("inert(%q) = %q keeps %U", s, out, r)
			}
			i += n
		}
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			clean = clean && !controlRune(r, n)
			i += n
		}
		if clean && out != s {
			t.Fatalf("inert(%q) = %q: clean text changed", s, out)
		}
	})
}
