package agent

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// inert makes text from the host or an endpoint safe to print on a terminal: every C0 and
// C1 control character (ESC, CSI, OSC, BEL, backspace, carriage return, ...), DEL, the
// bidirectional overrides and isolates (text that reads other than it is), and every byte
// that is not UTF-8 (a terminal in an 8-bit mode takes 0x9b for CSI) are written as Go
// escapes (\x1b, \u009b, \u202e). A process path, a passwd home, an image's /etc/hostname or
// an IMDS answer can then neither move the cursor, set the window title, clear the screen nor
// write the clipboard (OSC 52). Newlines and tabs are escaped too: the caller's layout
// decides where lines end.
func inert(s string) string {
	clean := true
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if controlRune(r, n) {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && controlRune(r, n):
			fmt.Fprintf(&b, `\x%02x`, r)
		case controlRune(r, n):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// controlRune reports whether the rune r (n bytes of the text) must not reach a terminal.
func controlRune(r rune, n int) bool {
	switch {
	case r == utf8.RuneError && n == 1: // a byte that is not UTF-8
		return true
	case r < 0x20, r >= 0x7f && r <= 0x9f: // C0, DEL, C1
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c: // bidi
		return true
	}
	return false
}
