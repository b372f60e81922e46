// Package logsinsights checks CloudWatch Logs Insights queries as far as a test can tell
// without AWS: the commands the ec2sec stack and dashboard use (fields, filter, stats, sort,
// limit, parse, dedup, display, and a dashboard's leading SOURCE), their clauses, the
// functions they call, balanced parentheses and quotes, and that every field a query reads is
// one the events have (or an alias the query made before). After stats only its outputs
// exist, as in Logs Insights.
//
// It is a checker for our queries, not a full grammar: what it does not know it refuses.
package logsinsights

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Fields tells whether the log events have a field (a dotted JSON path such as
// "result.check"). Fields Logs Insights adds itself (@timestamp, @message, @logStream, @log,
// @ingestionTime) are always known.
type Fields func(name string) bool

var builtin = []string{"@timestamp", "@message", "@logStream", "@log", "@ingestionTime"}

// Aggregates usable in stats; scalars usable in expressions (fields, filter, arguments).
var (
	aggregates = []string{"count", "count_distinct", "sum", "avg", "min", "max", "latest", "earliest", "pct", "stddev", "sortsFirst", "sortsLast"}
	scalars    = []string{"ispresent", "isempty", "isblank", "strlen", "tolower", "toupper", "concat", "coalesce", "strcontains", "substr", "replace", "trim", "ltrim", "rtrim", "abs", "ceil", "floor", "greatest", "least", "bin", "datefloor", "dateceil", "fromMillis", "toMillis", "isValidIp"}
	keywords   = []string{"and", "or", "not", "like", "in", "as", "by", "asc", "desc"}
)

// Check parses q and returns the first problem found, or nil.
func Check(q string, known Fields) error {
	toks, err := lex(q)
	if err != nil {
		return err
	}
	cmds := split(toks)
	if len(cmds) == 0 {
		return fmt.Errorf("empty query")
	}
	c := &checker{known: known, alias: map[string]bool{}}
	for i, cmd := range cmds {
		if len(cmd) == 0 {
			return fmt.Errorf("command %d is empty", i+1)
		}
		if err := c.command(i, cmd); err != nil {
			return fmt.Errorf("command %d (%s): %w", i+1, cmd[0].s, err)
		}
	}
	return nil
}

type kind int

const (
	ident kind = iota
	str
	regex
	num
	punct
	pipe
)

type tok struct {
	k kind
	s string
}

func lex(q string) ([]tok, error) {
	var out []tok
	regexOK := func() bool { // a '/' starts a regex after these
		if len(out) == 0 {
			return false
		}
		p := out[len(out)-1]
		return (p.k == ident && (strings.EqualFold(p.s, "like") || inParse(out))) || (p.k == punct && (p.s == "=~" || p.s == "(" || p.s == ","))
	}
	for i := 0; i < len(q); {
		ch := q[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			i++
		case ch == '|':
			out = append(out, tok{pipe, "|"})
			i++
		case ch == '"' || ch == '\'' || ch == '`' || (ch == '/' && regexOK()):
			j := i + 1
			for j < len(q) && q[j] != ch {
				if q[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(q) {
				return nil, fmt.Errorf("unterminated %c at offset %d", ch, i)
			}
			k := str
			switch ch {
			case '/':
				k = regex
			case '`':
				k = ident
			}
			out = append(out, tok{k, q[i+1 : j]})
			i = j + 1
		case ch >= '0' && ch <= '9':
			j := i
			for j < len(q) && (q[j] >= '0' && q[j] <= '9' || q[j] == '.' || q[j] >= 'a' && q[j] <= 'z') {
				j++ // 3600, 0.5, and bin periods such as 1h or 5m
			}
			out = append(out, tok{num, q[i:j]})
			i = j
		case isIdent(ch):
			j := i
			for j < len(q) && (isIdent(q[j]) || q[j] >= '0' && q[j] <= '9' || q[j] == '.') {
				j++
			}
			out = append(out, tok{ident, q[i:j]})
			i = j
		default:
			for _, p := range []string{"!=", "<=", ">=", "=~", "(", ")", "[", "]", ",", "=", "<", ">", "+", "-", "*", "/"} {
				if strings.HasPrefix(q[i:], p) {
					out = append(out, tok{punct, p})
					i += len(p)
					goto next
				}
			}
			return nil, fmt.Errorf("unexpected %q at offset %d", ch, i)
		next:
		}
	}
	return out, nil
}

func isIdent(c byte) bool {
	return c == '_' || c == '@' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// inParse: the tokens end in "parse <field>", whose pattern may be a regex.
func inParse(ts []tok) bool {
	n := len(ts)
	return n >= 2 && ts[n-2].k == ident && ts[n-2].s == "parse" && (n == 2 || ts[n-3].k == pipe)
}

func split(ts []tok) [][]tok {
	var out [][]tok
	cur := []tok{}
	for _, t := range ts {
		if t.k == pipe {
			out, cur = append(out, cur), []tok{}
			continue
		}
		cur = append(cur, t)
	}
	return append(out, cur)
}

type checker struct {
	known Fields
	alias map[string]bool
	after bool // after stats: only its outputs exist
}

func (c *checker) field(name string) error {
	if c.alias[name] {
		return nil
	}
	if c.after {
		return fmt.Errorf("field %q is not an output of the stats before it", name)
	}
	if slices.Contains(builtin, name) || c.known(name) {
		return nil
	}
	return fmt.Errorf("unknown field %q", name)
}

func (c *checker) command(i int, ts []tok) error {
	name, args := ts[0], ts[1:]
	if name.k != ident {
		return fmt.Errorf("a command starts with its name, not %q", name.s)
	}
	switch name.s {
	case "SOURCE":
		if i != 0 || len(args) == 0 {
			return fmt.Errorf("SOURCE comes first and names log groups")
		}
		for _, a := range args {
			if a.k != str && !(a.k == punct && a.s == ",") {
				return fmt.Errorf("SOURCE takes quoted log group names, not %q", a.s)
			}
		}
		return nil
	case "fields", "display":
		return c.list(args, true)
	case "dedup":
		return c.list(args, false)
	case "filter":
		if len(args) == 0 {
			return fmt.Errorf("filter needs an expression")
		}
		return c.expr(args, false)
	case "stats":
		return c.stats(args)
	case "sort":
		for _, item := range commaSplit(args) {
			if len(item) == 0 || len(item) > 2 || item[0].k != ident {
				return fmt.Errorf("sort takes a list of field [asc|desc]")
			}
			if len(item) == 2 && item[1].s != "asc" && item[1].s != "desc" {
				return fmt.Errorf("sort order %q is not asc or desc", item[1].s)
			}
			if err := c.field(item[0].s); err != nil {
				return err
			}
		}
		return nil
	case "limit":
		if len(args) != 1 || args[0].k != num {
			return fmt.Errorf("limit takes one number")
		}
		if n, err := strconv.Atoi(args[0].s); err != nil || n < 1 || n > 10000 {
			return fmt.Errorf("limit %q is not within 1..10000", args[0].s)
		}
		return nil
	case "parse":
		return c.parse(args)
	}
	return fmt.Errorf("unknown command %q", name.s)
}

// list: expr [as alias], ... (fields, display) or plain fields (dedup).
func (c *checker) list(args []tok, exprs bool) error {
	items := commaSplit(args)
	if len(items) == 0 {
		return fmt.Errorf("needs at least one field")
	}
	for _, item := range items {
		if len(item) == 0 {
			return fmt.Errorf("empty item in a list")
		}
		var as string
		if n := len(item); n >= 3 && item[n-2].k == ident && item[n-2].s == "as" {
			if item[n-1].k != ident {
				return fmt.Errorf("as needs a name")
			}
			as, item = item[n-1].s, item[:n-2]
		}
		if !exprs && (len(item) != 1 || item[0].k != ident) {
			return fmt.Errorf("takes field names only")
		}
		if err := c.expr(item, false); err != nil {
			return err
		}
		if as != "" {
			c.alias[as] = true
		}
	}
	return nil
}

func (c *checker) stats(args []tok) error {
	aggs, groups := args, []tok(nil)
	if i := slices.IndexFunc(args, func(t tok) bool { return t.k == ident && t.s == "by" }); i >= 0 {
		aggs, groups = args[:i], args[i+1:]
		if len(groups) == 0 {
			return fmt.Errorf("by needs fields")
		}
	}
	outs := map[string]bool{}
	for _, item := range commaSplit(aggs) {
		if len(item) < 3 || item[0].k != ident || !slices.Contains(aggregates, item[0].s) || item[1].s != "(" {
			return fmt.Errorf("stats takes aggregate functions (%s)", strings.Join(aggregates, ", "))
		}
		var as string
		if n := len(item); n >= 2 && item[n-2].k == ident && item[n-2].s == "as" {
			as, item = item[n-1].s, item[:n-2]
		}
		if item[len(item)-1].s != ")" {
			return fmt.Errorf("%s( is not closed where the item ends", item[0].s)
		}
		if !(item[0].s == "count" && len(item) == 4 && item[2].s == "*") {
			if err := c.expr(item, true); err != nil {
				return err
			}
		}
		outs[cmpOr(as, render(item))] = true
	}
	if len(outs) == 0 {
		return fmt.Errorf("stats needs an aggregate")
	}
	for _, item := range commaSplit(groups) {
		var as string
		if n := len(item); n >= 3 && item[n-2].s == "as" {
			as, item = item[n-1].s, item[:n-2]
		}
		if err := c.expr(item, false); err != nil {
			return err
		}
		outs[cmpOr(as, render(item))] = true
	}
	c.alias, c.after = outs, true
	return nil
}

func (c *checker) parse(args []tok) error {
	if len(args) < 2 || args[0].k != ident {
		return fmt.Errorf("parse takes a field and a pattern")
	}
	if err := c.field(args[0].s); err != nil {
		return err
	}
	switch args[1].k {
	case regex: // named groups make fields
		rest := args[1].s
		for {
			i := strings.Index(rest, "(?<")
			if i < 0 {
				break
			}
			rest = rest[i+3:]
			j := strings.IndexByte(rest, '>')
			if j <= 0 {
				return fmt.Errorf("unnamed or unterminated group in the regex")
			}
			c.alias[rest[:j]] = true
		}
		if len(args) != 2 {
			return fmt.Errorf("nothing may follow a parse regex")
		}
	case str:
		n := strings.Count(args[1].s, "*")
		if len(args) < 4 || args[2].s != "as" {
			return fmt.Errorf("a parse glob needs as and one name per *")
		}
		names := commaSplit(args[3:])
		if len(names) != n || n == 0 {
			return fmt.Errorf("the glob has %d *, as names %d", n, len(names))
		}
		for _, nm := range names {
			if len(nm) != 1 || nm[0].k != ident {
				return fmt.Errorf("as takes names")
			}
			c.alias[nm[0].s] = true
		}
	default:
		return fmt.Errorf("parse pattern must be a quoted glob or a /regex/")
	}
	return nil
}

// expr checks an expression: balanced parentheses, known functions (aggregates only when
// agg), fields known, keywords and operators where they may be.
func (c *checker) expr(ts []tok, agg bool) error {
	depth := 0
	for i, t := range ts {
		switch t.k {
		case punct:
			switch t.s {
			case "(":
				depth++
			case ")":
				if depth--; depth < 0 {
					return fmt.Errorf("unbalanced )")
				}
			}
		case ident:
			next := ""
			if i+1 < len(ts) {
				next = ts[i+1].s
			}
			switch {
			case slices.Contains(keywords, strings.ToLower(t.s)):
			case next == "(" && (slices.Contains(scalars, t.s) || agg && slices.Contains(aggregates, t.s)):
			case next == "(":
				return fmt.Errorf("unknown function %q", t.s)
			default:
				if err := c.field(t.s); err != nil {
					return err
				}
			}
		}
	}
	if depth != 0 {
		return fmt.Errorf("unbalanced (")
	}
	return nil
}

func commaSplit(ts []tok) [][]tok {
	if len(ts) == 0 {
		return nil
	}
	var out [][]tok
	depth, start := 0, 0
	for i, t := range ts {
		switch {
		case t.k == punct && t.s == "(":
			depth++
		case t.k == punct && t.s == ")":
			depth--
		case t.k == punct && t.s == "," && depth == 0:
			out, start = append(out, ts[start:i]), i+1
		}
	}
	return append(out, ts[start:])
}

func render(ts []tok) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.s)
	}
	return b.String()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
