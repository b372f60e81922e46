package secrets

import (
	"strings"
	"testing"
)

// TestLowerASCII holds the word-at-a-time lowercasing to strings.ToLower for every byte at
// every position of a word, and refuses non-ASCII wherever it is.
func TestLowerASCII(t *testing.T) {
	buf := new([]byte) // one for all: each result is checked before the next call
	for n := 0; n <= 19; n++ {
		for c := 0; c < 128; c++ {
			for at := 0; at < n; at++ {
				b := []byte(strings.Repeat("xY@[`{", 4)[:n])
				b[at] = byte(c)
				s := string(b)
				got, ok := lowerASCII(s, buf)
				if !ok || got != strings.ToLower(s) {
					t.Fatalf("lowerASCII(%q) = %q, %v; want %q", s, got, ok, strings.ToLower(s))
				}
			}
		}
		for at := 0; at < n; at++ {
			b := []byte(strings.Repeat("a", n))
			b[at] = 0xc3
			if _, ok := lowerASCII(string(b), buf); ok {
				t.Fatalf("non-ASCII byte at %d of %d not refused", at, n)
			}
		}
	}
}

func FuzzLowerASCII(f *testing.F) {
	f.Add("Hello WORLD_Key=ABC")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := lowerASCII(s, new([]byte))
		ascii := true
		for i := 0; i < len(s); i++ {
			ascii = ascii && s[i] < 0x80
		}
		if ok != ascii || (ok && got != strings.ToLower(s)) {
			t.Fatalf("lowerASCII(%q) = %q, %v", s, got, ok)
		}
	})
}
