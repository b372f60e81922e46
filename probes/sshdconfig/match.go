package sshdconfig

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Conn is a connection to evaluate Match blocks for, as sshd -C takes it. An empty field is
// "not given", and a criterion on it does not match (sshd's test mode does the same).
type Conn struct {
	User, Host, Addr, LocalAddr, RDomain string
	LocalPort                            int
	// Groups are the user's groups (sshd asks the system; here the caller says).
	Groups []string
}

func (c *Conn) matchesAll(ms []*Match) bool {
	return !slices.ContainsFunc(ms, func(m *Match) bool { return !c.Matches(m) })
}

// Matches reports whether every criterion of m holds for c.
func (c *Conn) Matches(m *Match) bool {
	if m.Invalid != "" {
		return false
	}
	if m.All {
		return true
	}
	for _, cr := range m.Criteria {
		var ok bool
		switch cr.Name {
		case "user":
			ok = c.User != "" && PatternList(c.User, cr.Pattern, false) == 1
		case "group":
			ok = c.User != "" && groupsMatch(c.Groups, cr.Pattern)
		case "host":
			ok = c.Host != "" && PatternList(c.Host, cr.Pattern, true) == 1
		case "address":
			ok = c.Addr != "" && AddrList(c.Addr, cr.Pattern) == 1
		case "localaddress":
			ok = c.LocalAddr != "" && AddrList(c.LocalAddr, cr.Pattern) == 1
		case "localport":
			p, err := strconv.Atoi(cr.Pattern)
			ok = c.LocalPort != 0 && err == nil && p == c.LocalPort
		case "rdomain":
			ok = c.RDomain != "" && PatternList(c.RDomain, cr.Pattern, false) == 1
		}
		if !ok {
			return false
		}
	}
	return true
}

// groupsMatch is sshd's ga_match_pattern_list: a negated match on any group wins.
func groupsMatch(groups []string, pattern string) bool {
	found := false
	for _, g := range groups {
		switch PatternList(g, pattern, false) {
		case -1:
			return false
		case 1:
			found = true
		}
	}
	return found
}

// PatternList is OpenSSH's match_pattern_list: pattern is a comma-separated list of
// wildcard patterns (* and ?), each optionally negated with '!'. It returns 1 when s matches
// a positive pattern, -1 when it matches a negated one (which wins), 0 otherwise.
func PatternList(s, pattern string, lower bool) int {
	if lower {
		s = strings.ToLower(s)
	}
	got := 0
	for _, p := range strings.Split(pattern, ",") {
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if lower {
			p = strings.ToLower(p)
		}
		if Wildcard(s, p) {
			if neg {
				return -1
			}
			got = 1
		}
	}
	return got
}

// AddrList is OpenSSH's addr_match_list: entries are CIDR blocks, addresses or wildcard
// patterns, each optionally negated. 1 matches, -1 negated match, 0 no match, -2 a bad entry.
func AddrList(addr, pattern string) int {
	a, aerr := netip.ParseAddr(addr)
	got := 0
	for _, p := range strings.Split(pattern, ",") {
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if p == "" {
			return -2
		}
		var hit bool
		if pfx, err := netip.ParsePrefix(p); err == nil {
			if pfx.Masked() != pfx {
				return -2 // sshd refuses host bits set beyond the mask
			}
			hit = aerr == nil && pfx.Contains(a.Unmap())
		} else if strings.Contains(p, "/") {
			return -2
		} else if pa, err := netip.ParseAddr(p); err == nil {
			hit = aerr == nil && pa.Unmap() == a.Unmap()
		} else {
			hit = Wildcard(addr, p)
		}
		if hit {
			if neg {
				return -1
			}
			got = 1
		}
	}
	return got
}

// Wildcard matches s against a pattern of literal characters, '*' (any run) and '?' (any one
// character), as OpenSSH's match_pattern.
func Wildcard(s, p string) bool {
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		// '*' first: a '*' in the pattern is a wildcard even where s has a '*' too.
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			si++
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
