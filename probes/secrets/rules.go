package secrets

import (
	"regexp"
	"slices"
	"strings"
)

// Our rules. gitleaks finds vendor tokens and private keys well; these cover what it misses in
// user data and host config files. Compiled once: regexps are immutable and safe to share.
var (
	// An AWS access key id, as gitleaks matches it.
	reKeyID = regexp.MustCompile(`\b((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b`)
	// A secret access key named as one (INI, env, YAML, JSON, CLI arguments).
	// (A comma separates name and value in PowerShell's SetEnvironmentVariable("NAME", "value").)
	reSecretKeyed = regexp.MustCompile(`(?i)(?:secret[_ .-]?access[_ .-]?key|secret[_.-]?key|aws[_.-]?secret[\w.-]*|SecretAccessKey)["']?[ \t]*(?:[:=,]|=>|[ \t])[ \t]*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`)
	// A bare 40-character base64 token: a secret key only when an access key id is close by.
	reBare40 = regexp.MustCompile(`(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`)
	// A session token named as one; real ones are hundreds of characters.
	reSessionToken = regexp.MustCompile(`(?i)(?:session[_ .-]?token|security[_ .-]?token|SessionToken)["']?[ \t]*(?:[:=]|[ \t])[ \t]*["']?([A-Za-z0-9/+=]{100,})`)

	// key: value / KEY=value assignments whose key names a password, secret or token.
	reAssign = regexp.MustCompile(`(?i)(?:^|[\s;,{("'=])["']?([a-z0-9_.-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?)[a-z0-9_.-]*)["']?[ \t]*(?::=|=>|:|=)[ \t]*("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|\S+)`)
	// echo 'user:pass' | chpasswd ; echo 'pass' | passwd --stdin user
	reEchoChpasswd = regexp.MustCompile(`echo[ \t]+(?:-e[ \t]+|-n[ \t]+)?["']?[a-z_][a-z0-9_-]*:([^\s"'|]+)["']?[ \t]*\|[ \t]*(?:sudo[ \t]+)?chpasswd`)
	reEchoPasswd   = regexp.MustCompile(`echo[ \t]+(?:-e[ \t]+|-n[ \t]+)?["']?([^\s"'|]+)["']?[ \t]*\|[ \t]*(?:sudo[ \t]+)?passwd[ \t]+--stdin`)
	// the indented "user:password" lines of a cloud-config chpasswd list
	reChpasswdLine = regexp.MustCompile(`^[ \t]+(?:-[ \t]+)?[a-z_][a-z0-9_-]*:([^\s:][^\s]*)[ \t]*$`)
	// mysql -pSECRET, mariadb -pSECRET (no space: with a space the client prompts)
	reMySQL = regexp.MustCompile(`\b(?:mysql|mariadb)(?:admin|dump|sh|import|-admin|-dump|-import)?\b[^\n|;&]*?[ \t]-p("[^"\n]+"|'[^'\n]+'|[^\s'"-][^\s]*)`)
	// mysqladmin -u root password NEWSECRET (the command that sets the password)
	reMySQLAdminPassword = regexp.MustCompile(`\b(?:mysqladmin|mariadb-admin)\b[^\n|;&]*?[ \t]password[ \t]+("[^"\n]+"|'[^'\n]+'|[^\s'"-][^\s]*)`)
	// --password=SECRET / --password SECRET on any command line (wget's --http-password too)
	rePasswordFlag = regexp.MustCompile(`(?:^|[ \t])--(?:db-|admin-|root-|http-|ftp-|proxy-)?password(?:=|[ \t]+)("[^"\n]+"|'[^'\n]+'|[^\s-][^\s]*)`)
	// sshpass -p SECRET / -pSECRET (-e and -f read it from elsewhere)
	reSSHPass = regexp.MustCompile(`\bsshpass\b[^\n|;&]*?[ \t]-p[ \t]*("[^"\n]+"|'[^'\n]+'|[^\s'"-][^\s]*)`)
	// htpasswd -b ... (the arguments are taken apart in htpasswdBatch)
	reHtpasswd = regexp.MustCompile(`\bhtpasswd((?:[ \t]+(?:"[^"\n]*"|'[^'\n]*'|[^\s|;&]+))+)`)
	// SQL: CREATE/ALTER USER ... IDENTIFIED [WITH plugin] BY 'SECRET' (MySQL, MariaDB); BY
	// PASSWORD '*hash' and AS 'hash' give a hash, not the password. The quotes may be escaped
	// inside a shell string (mysql -e "... BY \"SECRET\"").
	reIdentifiedBy = regexp.MustCompile(`(?i)\bidentified[ \t]+(?:with[ \t]+['"]?[\w-]+['"]?[ \t]+)?by[ \t]+(password[ \t]*)?\\?["']([^"'\n\\]+)\\?["']`)
	// SQL: CREATE/ALTER USER|ROLE ... [ENCRYPTED] PASSWORD 'SECRET' (PostgreSQL, Oracle-like)
	reSQLPassword = regexp.MustCompile(`(?i)\b(?:create|alter)[ \t]+(?:user|role)\b[^;\n]*?\bpassword[ \t]+\\?["']([^"'\n\\]+)\\?["']`)
	// SQL: SET PASSWORD [FOR u] = 'SECRET' / = PASSWORD('SECRET') (MySQL)
	reSetPassword = regexp.MustCompile(`(?i)\bset[ \t]+password\b[^;\n=]*=[ \t]*(?:password[ \t]*\([ \t]*)?\\?["']([^"'\n\\]+)\\?["']`)
	// PowerShell: [Environment]::SetEnvironmentVariable("NAME", "value", ...) and
	// $env:NAME = "value", for a NAME that names a secret (secretKeyName decides)
	rePSSetEnv = regexp.MustCompile(`(?i)SetEnvironmentVariable\([ \t]*["']([\w.-]+)["'][ \t]*,[ \t]*("[^"\n]*"|'[^'\n]*')`)
	rePSEnv    = regexp.MustCompile(`(?i)\$env:([\w.-]+)[ \t]*=[ \t]*("[^"\n]*"|'[^'\n]*'|[^\s;]+)`)
	// docker login -p SECRET
	reDockerLogin = regexp.MustCompile(`\b(?:docker|podman|nerdctl)[ \t]+login\b[^\n|;&]*?[ \t]-p(?:[ \t]+|=)("[^"\n]+"|'[^'\n]+'|\S+)`)
	// curl -u user:pass, also on a continuation line (curl \<newline>  --user u:p)
	reCurlUser = regexp.MustCompile(`\bcurl\b(?:[^\n|;&\\]|\\\r?\n|\\[^\n])*?[ \t](?:-u|--user)(?:[ \t]+|=)?["']?[^\s:"']+:([^\s"']+)`)
	// scheme://user:pass@host, and scheme://:pass@host (Redis, which has no user)
	reURLCreds = regexp.MustCompile(`\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s:/@'"]*:([^\s@/'"]+)@[A-Za-z0-9_.-]+`)
	// net user NAME PASS [/add] (sets the password of NAME) ; ConvertTo-SecureString "PASS"
	// -AsPlainText. A second argument starting with / is an option, * asks for the password.
	reNetUser = regexp.MustCompile(`(?i)\bnet[ \t]+user[ \t]+(?:"[^"\n]+"|[^\s"/]\S*)[ \t]+("[^"\n]+"|[^\s/*"|&<>]\S*)`)
	// the password of a .netrc entry ("machine h login u password p", on one line or several)
	reNetrc = regexp.MustCompile(`(?m)(?:^|[ \t])password[ \t]+(\S+)`)
	// the base64 user:password of a registry in ~/.docker/config.json
	reDockerAuth  = regexp.MustCompile(`"auth"[ \t]*:[ \t]*"([A-Za-z0-9+/]{8,}={0,2})"`)
	reSecureStrng = regexp.MustCompile(`(?i)ConvertTo-SecureString[ \t]+(?:-String[ \t]+)?["']([^"'\n]+)["'][ \t]+-AsPlainText`)
)

// awsKeys finds AWS access key ids and pairs each with its secret key (and, for temporary
// keys, its session token) when they are within a few lines: one finding per key.
//
// Every pattern here matches within one line: key ids and keyed secrets run over the lines
// holding their keywords, and bare 40-character tokens (secrets only within 3 lines of a key
// id) over the lines around the ids (see window.go).
func awsKeys(t *text, whole bool) []candidate {
	text, li := t.s, t.li
	if !t.hasAny(awsWords) {
		return nil
	}
	type tok struct {
		v     string
		line  int
		keyed bool
		used  bool
	}
	var ids, secrets, tokens []*tok
	if ws, ok := t.lines(keyIDPrefixes, whole); ok {
		t.find(reKeyID, ws, func(m []int) {
			v := text[m[2]:m[3]]
			if !strings.Contains(v, "EXAMPLE") && entropy(v) >= 3 {
				ids = append(ids, &tok{v: v, line: li.line(m[2])})
			}
		})
	}
	if ws, ok := t.lines([]string{"secret"}, whole); ok {
		t.find(reSecretKeyed, ws, func(m []int) {
			v := text[m[2]:m[3]]
			if secretKeyLike(v) {
				secrets = append(secrets, &tok{v: v, line: li.line(m[2]), keyed: true})
			}
		})
	}
	if len(ids) > 0 {
		var near [][2]int // nil = whole text
		if !whole {
			idLines := make([]int, 0, len(ids))
			for _, id := range ids {
				idLines = append(idLines, id.line-1)
			}
			slices.Sort(idLines)
			near = t.around(slices.Compact(idLines), bareWithin, bareWithin)
		}
		t.find(reBare40, near, func(m []int) {
			v := text[m[2]:m[3]]
			if !secretKeyLike(v) {
				return
			}
			known := false
			for _, s := range secrets {
				known = known || s.v == v
			}
			if !known {
				secrets = append(secrets, &tok{v: v, line: li.line(m[2])})
			}
		})
		if ws, ok := t.lines([]string{"token"}, whole); ok {
			t.find(reSessionToken, ws, func(m []int) {
				tokens = append(tokens, &tok{v: text[m[2]:m[3]], line: li.line(m[2])})
			})
		}
	}
	nearest := func(id *tok, pool []*tok, within int, keyedOnly bool) *tok {
		var best *tok
		bestD := within + 1
		for _, s := range pool {
			if s.used || (keyedOnly && !s.keyed) {
				continue
			}
			d := s.line - id.line
			if d < 0 {
				d = -d*2 + 1 // prefer what follows the id, as files write them
			} else {
				d *= 2
			}
			if d < bestD*2 && (best == nil || d < bestD) {
				best, bestD = s, d
			}
		}
		if best != nil && abs(best.line-id.line) <= within {
			return best
		}
		return nil
	}
	var out []candidate
	for _, id := range ids {
		c := candidate{rule: "aws-access-token", kind: AWSLongLived, prio: prioAWS, line: id.line, value: id.v, keyID: id.v, claims: []string{id.v}}
		if strings.HasPrefix(id.v, "ASIA") {
			c.kind = AWSSession
		}
		s := nearest(id, secrets, 5, true)
		if s == nil {
			s = nearest(id, secrets, bareWithin, false)
		}
		if s != nil {
			s.used = true
			c.rule, c.value = "aws-access-key-pair", s.v
			c.claims = append(c.claims, s.v)
		}
		if t := nearest(id, tokens, 6, false); t != nil && c.kind == AWSSession {
			t.used = true
			c.claims = append(c.claims, t.v)
		}
		out = append(out, c)
	}
	for _, s := range secrets {
		if !s.used && s.keyed {
			out = append(out, candidate{rule: "aws-secret-access-key", kind: AWSLongLived, prio: prioAWS, line: s.line, value: s.v, claims: []string{s.v}})
		}
	}
	return out
}

// awsWords are what a text holds when awsKeys can find anything in it.
var awsWords = []string{"akia", "asia", "abia", "acca", "a3t", "secret"}

// keyIDPrefixes are the prefixes of AWS access key ids, lowercased.
var keyIDPrefixes = []string{"akia", "asia", "abia", "acca", "a3t"}

// bareWithin is how many lines from a key id a bare 40-character token is taken as its secret.
const bareWithin = 3

// secretKeyLike reports whether a 40-character token looks like a secret access key rather
// than a hex digest, a path or a documentation example.
func secretKeyLike(v string) bool {
	var lower, upper, digit bool
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		}
	}
	return lower && upper && digit && !strings.Contains(v, "EXAMPLE") && entropy(v) > 4
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

type ownRule struct {
	id  string
	re  *regexp.Regexp
	grp int      // submatch holding the secret
	kw  []string // the rule runs only when the lowercased text holds one of these
	// also: a line-bound rule runs only over lines that also hold one of these (lowercase):
	// each is in every match, so a line without any cannot match.
	also []string
	// notIf, when set, is a submatch that makes a match no secret: IDENTIFIED BY PASSWORD
	// '…' gives MySQL a hash.
	notIf int
	// after: the rule runs over its keyword's line and this many lines below (a command
	// continued with backslash-newline), not over the keyword's line alone.
	after int
}

var specificRules = []ownRule{
	{"chpasswd-echo", reEchoChpasswd, 1, []string{"chpasswd"}, []string{"echo"}, 0, 0},
	{"passwd-stdin", reEchoPasswd, 1, []string{"--stdin"}, []string{"echo"}, 0, 0},
	{"mysql-password-argument", reMySQL, 1, []string{"mysql", "mariadb"}, []string{"-p"}, 0, 0},
	{"mysql-password-argument", reMySQLAdminPassword, 1, []string{"mysqladmin", "mariadb-admin"}, []string{"password"}, 0, 0},
	{"password-argument", rePasswordFlag, 1, []string{"--"}, []string{"password"}, 0, 0},
	{"sshpass-password", reSSHPass, 1, []string{"sshpass"}, []string{"-p"}, 0, 0},
	{"sql-password", reIdentifiedBy, 2, []string{"identified"}, []string{"by"}, 1, 0},
	{"sql-password", reSQLPassword, 1, []string{"password"}, []string{"create", "alter"}, 0, 0},
	{"sql-password", reSetPassword, 1, []string{"set password"}, nil, 0, 0},
	{"docker-login-password", reDockerLogin, 1, []string{"login"}, []string{"-p"}, 0, 0},
	{"curl-user-password", reCurlUser, 1, []string{"curl"}, []string{"-u"}, 0, 12},
	{"url-credentials", reURLCreds, 1, []string{"://"}, []string{"@"}, 0, 0},
	{"windows-net-user-password", reNetUser, 1, []string{"net user"}, nil, 0, 0},
	{"powershell-plaintext-password", reSecureStrng, 1, []string{"securestring"}, []string{"-asplaintext"}, 0, 0},
	{"docker-config-auth", reDockerAuth, 1, []string{`"auth"`}, nil, 0, 0},
	{"netrc-password", reNetrc, 1, []string{"machine "}, nil, 0, 0},
}

// ownRules runs our rules over text.
//
// Each rule but netrc-password matches within one line that holds its keyword (the keyword is
// part of the match), so it runs over those lines only (see window.go); netrc's keyword
// ("machine") may be lines away from the password, so it runs over the whole text.
func ownRules(t *text, whole bool) []candidate {
	text, li := t.s, t.li
	var out []candidate
	add := func(rule string, prio int, off int, raw string) {
		v := unquote(raw)
		if placeholder(v) {
			return
		}
		out = append(out, candidate{rule: rule, prio: prio, line: li.line(off), value: v, claims: []string{v}})
	}
	each := func(re *regexp.Regexp, kws, also []string, lineBound bool, after int, fn func(m []int)) {
		ws, ok := t.lines(kws, whole || !lineBound)
		if !ok {
			return
		}
		if ws != nil && after > 0 {
			ws = t.around(t.hitLines(kws), 0, after)
		}
		if ws != nil && len(also) > 0 {
			ws = slices.DeleteFunc(ws, func(w [2]int) bool {
				start, end := t.lowerSpan(w[0], w[1])
				return !t.spanHasAny(start, end, also)
			})
			if len(ws) == 0 {
				return
			}
		}
		t.find(re, ws, fn)
	}
	for _, r := range specificRules {
		each(r.re, r.kw, r.also, r.id != "netrc-password", r.after, func(m []int) {
			if r.notIf > 0 && m[2*r.notIf] >= 0 {
				return
			}
			add(r.id, prioOwnSpecific, m[2*r.grp], text[m[2*r.grp]:m[2*r.grp+1]])
		})
	}
	each(reHtpasswd, htpasswdWords, nil, true, 0, func(m []int) {
		if off, v, ok := htpasswdBatch(text, m[2], m[3]); ok {
			add("htpasswd-password", prioOwnSpecific, off, v)
		}
	})
	for _, re := range []*regexp.Regexp{rePSSetEnv, rePSEnv} {
		each(re, psEnvWords, nil, true, 0, func(m []int) {
			if secretName(text[m[2]:m[3]]) {
				add("powershell-env-secret", prioOwnSpecific, m[4], text[m[4]:m[5]])
			}
		})
	}
	if t.has("chpasswd:") {
		chpasswdList(text, li, add)
	}
	each(reAssign, assignKeywords, nil, true, 0, func(m []int) {
		if secretKeyName(text[m[2]:m[3]]) {
			add("password-assignment", prioOwnGeneric, m[4], text[m[4]:m[5]])
		}
	})
	return out
}

var assignKeywords = []string{"pass", "pwd", "secret", "token", "key", "credential"}

// ownWords are the keywords our rules look for (awsKeys, ownRules): the keyword index
// records where each occurs.
func ownWords() []string {
	words := slices.Concat(awsWords, keyIDPrefixes, []string{"secret", "token", "chpasswd:"}, assignKeywords, htpasswdWords, psEnvWords)
	for _, r := range specificRules {
		words = slices.Concat(words, r.kw, r.also)
	}
	return words
}

var (
	htpasswdWords = []string{"htpasswd"}
	psEnvWords    = []string{"setenvironmentvariable", "$env:"}
	// reSecretName: a variable name that names a secret (secretKeyName then drops those
	// naming something about one: DB_PASSWORD_FILE, TOKEN_URL).
	reSecretName = regexp.MustCompile(`(?i)password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?`)
)

// secretName reports whether a variable name names a secret.
func secretName(n string) bool { return reSecretName.MatchString(n) && secretKeyName(n) }

// htpasswdBatch finds the password of an htpasswd command whose arguments are
// text[start:end]: only in batch mode (-b), the last of its positional arguments, which are
// "file user password", or "user password" with -n (no file). -C and -r take a value.
// off is the password's offset in text.
func htpasswdBatch(text string, start, end int) (off int, v string, ok bool) {
	var batch, noFile, takesValue bool
	var pos []int // offsets of positional arguments
	for i := start; i < end; {
		for i < end && (text[i] == ' ' || text[i] == '\t') {
			i++
		}
		if i >= end {
			break
		}
		j := i
		if q := text[i]; q == '"' || q == '\'' {
			j++
			for j < end && text[j] != q {
				j++
			}
			j = min(j+1, end)
		} else {
			for j < end && text[j] != ' ' && text[j] != '\t' {
				j++
			}
		}
		tok := text[i:j]
		switch {
		case takesValue:
			takesValue = false
		case len(tok) > 1 && tok[0] == '-' && len(pos) == 0:
			batch = batch || strings.ContainsRune(tok[1:], 'b')
			noFile = noFile || strings.ContainsRune(tok[1:], 'n')
			takesValue = tok == "-C" || tok == "-r"
		default:
			pos = append(pos, i)
		}
		i = j
	}
	need := 3
	if noFile {
		need = 2
	}
	if !batch || len(pos) < need {
		return 0, "", false
	}
	off = pos[need-1]
	rest := text[off:end]
	if q := rest[0]; q == '"' || q == '\'' {
		if k := strings.IndexByte(rest[1:], q); k >= 0 {
			return off, rest[:k+2], true
		}
		return off, rest, true
	}
	if k := strings.IndexAny(rest, " \t"); k >= 0 {
		rest = rest[:k]
	}
	return off, rest, true
}

// chpasswdList finds the user:password lines of cloud-config chpasswd lists (the old
// "list: |" form; the "users:" form has password: keys the assignment rule sees).
func chpasswdList(text string, li *lineIndex, add func(string, int, int, string)) {
	from := 0
	for {
		i := strings.Index(text[from:], "chpasswd:")
		if i < 0 {
			return
		}
		i += from
		lineStart := strings.LastIndexByte(text[:i], '\n') + 1
		indent := i - lineStart
		off := strings.IndexByte(text[i:], '\n')
		if off < 0 {
			return
		}
		off += i + 1
		for off < len(text) {
			end := strings.IndexByte(text[off:], '\n')
			if end < 0 {
				end = len(text)
			} else {
				end += off
			}
			line := text[off:end]
			trimmed := strings.TrimLeft(line, " \t")
			if trimmed != "" && len(line)-len(trimmed) <= indent {
				break // the chpasswd block ended
			}
			if m := reChpasswdLine.FindStringSubmatchIndex(line); m != nil {
				v := line[m[2]:m[3]]
				if v != "RANDOM" && v != "R" && !strings.HasPrefix(v, "$") {
					add("cloud-config-chpasswd", prioOwnSpecific, off+m[2], v)
				}
			}
			off = end + 1
		}
		from = off
		if from >= len(text) {
			return
		}
	}
}

// secretKeyName reports whether an assignment's key names a secret and not something about
// one (its file, name, length, hash, URL, id, ...). The key is split into words (snake, kebab,
// dotted and camel case) so "admin_password" is a secret and "password_min_length" is not.
func secretKeyName(k string) bool {
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 'A' && c <= 'Z' && i > 0 && k[i-1] >= 'a' && k[i-1] <= 'z' {
			b.WriteByte('_')
		}
		b.WriteByte(c)
	}
	for _, w := range strings.FieldsFunc(strings.ToLower(b.String()), func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
		if notSecretWords[w] {
			return false
		}
	}
	return true
}

var notSecretWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`file path url uri arn name length len policy hash hashed type
		expire expires expiry expiration min max lock prompt command cmd endpoint ttl header param
		parameter region dir version count enabled enable required ref location sha sha1 sha256
		md5 sum checksum digest fingerprint id ids rotation format ssm kms reset pwauth chpasswd
		mode method field env variable age seconds timeout expired source process`) {
		notSecretWords[w] = true
	}
}

// sqlHash reports a password hash as SQL servers store them (PostgreSQL md5 and SCRAM): it
// sets a password without holding it.
func sqlHash(v string) bool {
	if strings.HasPrefix(v, "SCRAM-SHA-256$") {
		return true
	}
	if len(v) != 35 || !strings.HasPrefix(v, "md5") {
		return false
	}
	for _, c := range v[3:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return strings.TrimRight(v, ",;}]")
}

// placeholder reports values that are not secrets: references to where a secret is fetched
// from at run time (${VAR}, $(aws secretsmanager ...), %VAR%), templates, documentation
// examples, paths, booleans and numbers, hashes, public keys, and values too short to matter.
func placeholder(v string) bool {
	v = strings.TrimSpace(v)
	if len(v) < 6 {
		return true
	}
	switch v[0] {
	case '$', '%', '<', '@', '!', '`', '/', '~', '*', '[', '(', '{', '&', '.', '#', '\\':
		return true
	}
	l := strings.ToLower(v)
	for _, p := range []string{
		"example", "changeme", "change_me", "change-me", "placeholder", "replace", "your_",
		"your-", "yourpass", "xxxx", "****", "redacted", "secretsmanager", "get-parameter",
		"get-secret-value", "dummy", "fixme", "todo", "{{", "${", "$(", "<", "ssh-rsa",
		"ssh-ed25519", "ecdsa-sha2", "-----begin public", "-----begin certificate", "none",
		"notasecret", "not-a-secret", "secretref", "valuefrom", "file://", "vault:",
		"changeit", "arn:aws:ssm:", "ssm:/", "resolve:ssm", "parameter/",
	} {
		if strings.Contains(l, p) {
			return true
		}
	}
	switch l {
	case "password", "passw0rd", "secret", "token", "true", "false", "null", "test",
		"testing", "random", "default", "string", "required", "optional", "hidden":
		return true
	}
	if sqlHash(v) {
		return true
	}
	allDigits, same := true, true
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			allDigits = false
		}
		if v[i] != v[0] {
			same = false
		}
	}
	return allDigits || same
}
