package sshdconfig

import (
	"path"
	"slices"
	"strings"
	"testing"
)

// memFS is a config tree in memory: sshd_config and its includes, as fuzz input gives them.
type memFS map[string][]byte

func (m memFS) ReadFile(name string) ([]byte, error) {
	b, ok := m[name]
	if !ok {
		return nil, &pathErr{name}
	}
	return b, nil
}

func (m memFS) Glob(pattern string) ([]string, error) {
	var out []string
	for n := range m {
		if ok, err := path.Match(pattern, n); err != nil {
			return nil, err
		} else if ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

type pathErr struct{ name string }

func (e *pathErr) Error() string { return e.name + ": no such file" }

// FuzzParse: an sshd_config and an included file, both fuzz input (a file may include
// itself), never make the parser panic or read more than MaxFiles files; every directive
// is a lower-case keyword from a real line; lookups work on whatever was parsed.
func FuzzParse(f *testing.F) {
	for _, c := range configCases {
		f.Add([]byte(c.files["sshd_config"]), []byte(c.files["conf.d/10-a.conf"]))
	}
	f.Add([]byte("Include /etc/ssh/sshd_config\nPermitRootLogin yes\n"), []byte(""))
	f.Add([]byte("Include sshd_config.d/*.conf\nMatch User bob\n  PasswordAuthentication yes\n"), []byte("Include /etc/ssh/sshd_config.d/*.conf\nMatch All\nPermitRootLogin no\n"))
	f.Add([]byte("Match Address 10.0.0.0/8,!10.1.0.0/16 User *,!root\nPasswordAuthentication yes\n"), []byte("Match LocalPort 22 Host \"a b\"\n"))
	f.Add([]byte("PermitRootLogin \"unterminated\nPort=22 # comment\n\x00\xff Port 2\\ 2\n"), []byte("Match\nMatch all extra\n"))
	f.Fuzz(func(t *testing.T, main, inc []byte) {
		fsys := memFS{"/etc/ssh/sshd_config": main, "/etc/ssh/sshd_config.d/a.conf": inc, "/etc/ssh/sshd_config.d/b.conf": inc}
		c, err := Parse(fsys, "/etc/ssh/sshd_config")
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Files) > MaxFiles {
			t.Fatalf("read %d files", len(c.Files))
		}
		lines := 0
		for _, n := range c.Files {
			lines += strings.Count(string(fsys[n]), "\n") + 1
		}
		if len(c.Directives) > lines {
			t.Fatalf("%d directives from %d lines", len(c.Directives), lines)
		}
		for _, d := range c.Directives {
			if d.Keyword == "" || d.Keyword != strings.ToLower(d.Keyword) || strings.ContainsAny(d.Keyword, " \t=") || len(d.Args) == 0 {
				t.Fatalf("bad directive %+v", d)
			}
			if d.Line < 1 {
				t.Fatalf("line %d", d.Line)
			}
		}
		for _, kw := range []string{"passwordauthentication", "permitrootlogin", "port"} {
			c.Lookup(kw, nil)
			c.Lookup(kw, &Conn{User: "root", Host: "h", Addr: "10.1.2.3", LocalAddr: "10.0.0.1", LocalPort: 22})
			c.Overrides(kw)
		}
	})
}

// FuzzPatternList: OpenSSH's pattern matching never panics, a literal pattern matches
// itself, and '*' matches anything.
func FuzzPatternList(f *testing.F) {
	for _, s := range [][2]string{{"root", "root"}, {"bob", "*,!root"}, {"10.1.2.3", "10.0.0.0/8,!10.1.0.0/16"}, {"host.example", "*.example"}, {"x", "a*b*c*d*e*f*g*"}, {"::1", "::1/128"}, {"", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, s, pattern string) {
		PatternList(s, pattern, true)
		AddrList(s, pattern)
		_ = Wildcard(s, pattern) // must not panic
		if !strings.ContainsAny(s, "*?") && !Wildcard(s, s) {
			t.Fatalf("%q does not match itself", s)
		}
		if !Wildcard(s, "*") {
			t.Fatalf("* does not match %q", s)
		}
		if !strings.ContainsAny(s, "*?,!") && s != "" && PatternList(s, s, false) != 1 {
			t.Fatalf("pattern list %q does not match itself", s)
		}
	})
}

// TestWildcardStarBeforeLiteral is FuzzPatternList's crasher: a '*' in the pattern was taken
// as a literal when s had a '*' at the same place, so "*" did not match "*0".
func TestWildcardStarBeforeLiteral(t *testing.T) {
	for _, c := range [][2]string{{"*0", "*"}, {"a*b", "a*"}, {"**", "*"}, {"x*y*z", "x*z"}} {
		if !Wildcard(c[0], c[1]) {
			t.Errorf("Wildcard(%q, %q) = false", c[0], c[1])
		}
	}
}
