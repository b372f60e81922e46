// Package sshdconfig reads an OpenSSH sshd_config the way sshd does: keywords in any case,
// "Keyword value" or "Keyword=value", quoted arguments, Include globs (relative to /etc/ssh,
// expanded in lexical order, a Match in an included file ending with that file), Match blocks,
// and the first value obtained winning. Value answers what sshd -T prints, with or without a
// connection (sshd -T -C), so the parser can be checked against a real OpenSSH.
package sshdconfig

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Bounds that keep a hostile or broken config from costing much.
const (
	// MaxDepth is sshd's own Include nesting limit (SERVCONF_MAX_DEPTH).
	MaxDepth = 16
	// MaxFiles bounds how many files one parse reads.
	MaxFiles = 256
	// MaxFileSize bounds one file.
	MaxFileSize = 1 << 20
)

// SSHDir is where sshd looks for relative Include paths (OpenSSH for Windows uses
// %ProgramData%\ssh; see ParseIn).
const SSHDir = "/etc/ssh"

// FS is what the parser reads through: ec2sec's root-bound host tree in the agent, any tree
// in tests.
type FS interface {
	// ReadFile returns the file's content, at most MaxFileSize bytes (an error beyond).
	ReadFile(name string) ([]byte, error)
	// Glob returns the paths matching pattern, sorted.
	Glob(pattern string) ([]string, error)
}

// Directive is one keyword line.
type Directive struct {
	Keyword string   // lower case, e.g. "passwordauthentication"
	Args    []string // arguments, quotes removed
	File    string
	Line    int
	// Context is the chain of Match blocks the line is under, outermost first (an Include
	// inside a Match block adds the included file's own Match); empty means global.
	Context []*Match
}

// Where returns "file:line".
func (d Directive) Where() string { return fmt.Sprintf("%s:%d", d.File, d.Line) }

// Value returns the first argument, or "".
func (d Directive) Value() string {
	if len(d.Args) == 0 {
		return ""
	}
	return d.Args[0]
}

// Global reports whether the line applies without any connection: outside Match blocks, or
// only under "Match All" (sshd applies those when it loads the config).
func (d Directive) Global() bool {
	for _, m := range d.Context {
		if !m.All {
			return false
		}
	}
	return true
}

// Match is one Match block header.
type Match struct {
	File     string
	Line     int
	Text     string // the criteria as written, e.g. "User bob Address 10.0.0.0/8"
	All      bool
	Criteria []Criterion
	// Invalid says why the line cannot match (unknown criterion, missing argument); sshd
	// itself refuses such a config.
	Invalid string
}

// Criterion is one "Name pattern-list" pair of a Match line.
type Criterion struct {
	Name    string // lower case: user, group, host, address, localaddress, localport, rdomain
	Pattern string
}

// Config is a parsed sshd_config with its includes.
type Config struct {
	Directives []Directive
	// Files lists every file read, in order.
	Files []string
	// Problems are things sshd would complain about or that the parser could not read
	// (a missing Include target is not one: sshd ignores globs without matches).
	Problems []string

	sshDir string
}

// Parse reads the config at name and everything it includes, relative Include paths taken
// from SSHDir.
func Parse(fsys FS, name string) (*Config, error) {
	return ParseIn(fsys, name, SSHDir)
}

// ParseIn is Parse with relative Include paths taken from sshDir.
func ParseIn(fsys FS, name, sshDir string) (*Config, error) {
	c := &Config{sshDir: sshDir}
	data, err := fsys.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	c.Files = append(c.Files, name)
	c.parse(fsys, name, data, nil, 0)
	return c, nil
}

func (c *Config) parse(fsys FS, file string, data []byte, outer []*Match, depth int) {
	ctx := outer
	for i, raw := range strings.Split(string(data), "\n") {
		line := i + 1
		kw, args, err := splitLine(raw)
		if err != nil {
			c.Problems = append(c.Problems, fmt.Sprintf("%s:%d: %v", file, line, err))
			continue
		}
		if kw == "" {
			continue
		}
		switch kw {
		case "match":
			m := parseMatch(args)
			m.File, m.Line = file, line
			if m.Invalid != "" {
				c.Problems = append(c.Problems, fmt.Sprintf("%s:%d: Match: %s", file, line, m.Invalid))
			}
			// A Match ends the previous one but stays inside the Include that reached this
			// file: the outer context is kept.
			ctx = append(outer[:len(outer):len(outer)], m)
		case "include":
			c.include(fsys, file, line, args, ctx, depth)
		default:
			c.Directives = append(c.Directives, Directive{Keyword: kw, Args: args, File: file, Line: line, Context: ctx})
		}
	}
}

func (c *Config) include(fsys FS, file string, line int, args []string, ctx []*Match, depth int) {
	if len(args) == 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%s:%d: Include without argument", file, line))
		return
	}
	if depth+1 > MaxDepth {
		c.Problems = append(c.Problems, fmt.Sprintf("%s:%d: Include nested deeper than %d", file, line, MaxDepth))
		return
	}
	for _, pat := range args {
		if !path.IsAbs(pat) {
			pat = path.Join(c.sshDir, pat)
		}
		names, err := fsys.Glob(pat)
		if err != nil {
			c.Problems = append(c.Problems, fmt.Sprintf("%s:%d: Include %s: %v", file, line, pat, err))
			continue
		}
		for _, n := range names {
			if len(c.Files) >= MaxFiles {
				c.Problems = append(c.Problems, fmt.Sprintf("%s:%d: more than %d config files; the rest is not read", file, line, MaxFiles))
				return
			}
			data, err := fsys.ReadFile(n)
			if err != nil {
				c.Problems = append(c.Problems, fmt.Sprintf("%s:%d: Include %s: %v", file, line, n, err))
				continue
			}
			c.Files = append(c.Files, n)
			c.parse(fsys, n, data, ctx, depth+1)
		}
	}
}

// aliases are old keyword names sshd still reads as another keyword: they share its
// first-value-wins slot, so they are stored under the current name.
var aliases = map[string]string{
	"challengeresponseauthentication": "kbdinteractiveauthentication",
	"skeyauthentication":              "kbdinteractiveauthentication",
	"dsaauthentication":               "pubkeyauthentication",
	"pubkeyacceptedkeytypes":          "pubkeyacceptedalgorithms",
	"hostbasedacceptedkeytypes":       "hostbasedacceptedalgorithms",
}

// splitLine returns the lower-case keyword and the arguments of one line ("" for blank and
// comment lines), as sshd's strdelim and argv_split do: the keyword ends at white space or a
// single '=', arguments may be quoted, and a word starting with '#' starts a comment.
func splitLine(s string) (string, []string, error) {
	s = strings.TrimRight(s, " \t\r\f")
	s = strings.TrimLeft(s, " \t")
	if s == "" || s[0] == '#' {
		return "", nil, nil
	}
	i := strings.IndexAny(s, " \t=")
	if i < 0 {
		// The line is not quoted back: a stray line may be anything, a pasted secret included.
		return "", nil, errors.New("a keyword without argument")
	}
	kw := strings.ToLower(s[:i])
	if c, ok := aliases[kw]; ok {
		kw = c
	}
	rest := strings.TrimLeft(s[i:], " \t")
	if strings.HasPrefix(rest, "=") {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	args, err := splitArgs(rest)
	if err != nil {
		return "", nil, err
	}
	if len(args) == 0 && kw != "match" {
		return "", nil, errors.New("a keyword without argument")
	}
	return kw, args, nil
}

func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case ch == '"' || ch == '\'':
			quote = ch
			inWord = true
		case ch == ' ' || ch == '\t':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '#' && !inWord:
			return args, nil
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// criteria are the Match attributes this parser evaluates (OpenSSH 9.x).
var criteria = map[string]bool{
	"user": true, "group": true, "host": true, "address": true,
	"localaddress": true, "localport": true, "rdomain": true,
}

func parseMatch(args []string) *Match {
	m := &Match{Text: strings.Join(args, " ")}
	if len(args) == 0 {
		m.Invalid = "no criteria"
		return m
	}
	if strings.EqualFold(args[0], "all") {
		if len(args) > 1 {
			m.Invalid = "'all' cannot be combined with other Match attributes"
			return m
		}
		m.All = true
		return m
	}
	for i := 0; i < len(args); i += 2 {
		name := strings.ToLower(args[i])
		if !criteria[name] {
			m.Invalid = fmt.Sprintf("unsupported attribute (word %d)", i+1)
			return m
		}
		if i+1 >= len(args) {
			m.Invalid = fmt.Sprintf("attribute %s without argument", name)
			return m
		}
		m.Criteria = append(m.Criteria, Criterion{Name: name, Pattern: args[i+1]})
	}
	return m
}

// Lookup returns the directive sshd takes keyword (lower case) from for conn, or false when
// sshd uses its default. sshd re-reads its config for every connection: the first value in a
// Match block that matches the connection wins, else the first global one (sshd -T -C). With
// conn nil it answers for a connection that matches no criterion, as sshd -T without -C does:
// only Match All blocks apply, and they override the global value.
func (c *Config) Lookup(keyword string, conn *Conn) (Directive, bool) {
	if conn == nil {
		conn = &Conn{}
	}
	for _, d := range c.Directives {
		if d.Keyword == keyword && len(d.Context) > 0 && conn.matchesAll(d.Context) {
			return d, true
		}
	}
	for _, d := range c.Directives {
		if d.Keyword == keyword && d.Global() {
			return d, true
		}
	}
	return Directive{}, false
}

// Overrides returns the directives for keyword inside Match blocks (other than Match All),
// in file order: the places where a setting differs for some connections.
func (c *Config) Overrides(keyword string) []Directive {
	var out []Directive
	for _, d := range c.Directives {
		if d.Keyword == keyword && !d.Global() {
			out = append(out, d)
		}
	}
	return out
}

// All returns every directive for keyword, in file order.
func (c *Config) All(keyword string) []Directive {
	var out []Directive
	for _, d := range c.Directives {
		if d.Keyword == keyword {
			out = append(out, d)
		}
	}
	return out
}
