package secrets

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// cloud-config as cloud-init reads it. The text of a #cloud-config document is scanned as
// text, as any part is; this reads its YAML too, for what the text does not show as it is:
//   - write_files content under an encoding (b64, gzip, gz+b64, ...) is decoded and scanned
//     as a part of its own, "cloud-config:write_files[N]>gzip", with the file's path as the
//     part's Target;
//   - runcmd and bootcmd items in list form ([mysql, -u, root, "-p…"]) are joined into the
//     command line cloud-init runs, each a part "cloud-config:runcmd[N]";
//   - passwords: chpasswd (list and users forms), users[].plain_text_passwd, passwd and
//     hashed_passwd (a crypt hash is reported as a hash, not as a password), the default
//     user's password;
//   - private keys (ssh_keys, ca_certs, or any value holding one) written in a style other
//     than a literal block ("|"), whose text is not the key cloud-init writes, are scanned
//     as the value, as a part of their own.
//
// Bounded: a document over maxCloudConfig bytes, nested deeper than maxYAMLDepth or made of
// more than maxYAMLNodes nodes is scanned as text only, and Decoded.Notes says so; so is
// one that does not parse. Aliases are not followed (an alias is a few bytes that can stand
// for megabytes); the anchored value is read where it is written.

const (
	maxCloudConfig = 1 << 20
	maxYAMLDepth   = 64
	// maxYAMLNodes bounds the parsed tree's memory and time (yaml.v3 allocates about 250
	// bytes a node): 1 MiB of one-character flow items, half a million nodes, took 130 MiB.
	// Real cloud-config has a few hundred. A document whose text could hold more than twice
	// as many (yamlMarks) is not parsed at all.
	maxYAMLNodes = 10000
	// maxCloudParts bounds the parts one document adds.
	maxCloudParts = 256
)

// Rules of secrets read from a cloud-config document's structure.
const (
	ruleCloudPassword     = "cloud-config-password"
	ruleCloudPasswordHash = "cloud-config-password-hash"
)

// cloudSecret is a secret read from a document's YAML, at a line of the document.
type cloudSecret struct {
	rule, detail string
	line         int
	value        string
}

// region is the document's lines [start, end] holding a write_files content written as it
// is: a finding there is in the file written to target.
type region struct {
	start, end int
	target     string
}

// isCloudConfig reports whether data is a cloud-config document: its first line is
// "#cloud-config", or its second after cloud-init's "## template: jinja" line.
func isCloudConfig(data []byte) bool {
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	if bytes.HasPrefix(bytes.TrimSpace(first), []byte("## template:")) {
		first, _, _ = bytes.Cut(rest, []byte("\n"))
	}
	return string(bytes.TrimRight(first, " \t\r")) == "#cloud-config"
}

// cloudConfig reads the document data, emitted as d.parts[pi] (chain), as cloud-init would.
func (d *decoder) cloudConfig(pi int, data []byte, chain []string, depth int) {
	where := strings.Join(chain, ">")
	if where == "" {
		where = "plain"
	}
	if len(data) > maxCloudConfig {
		d.note(fmt.Sprintf("cloud-config in part %s is over %d MiB: scanned as text only", where, maxCloudConfig>>20))
		d.limited = true
		return
	}
	root, problem, limit := parseYAML(data)
	if problem != "" {
		d.note(fmt.Sprintf("cloud-config in part %s %s: scanned as text only", where, problem))
		// A document that is no YAML is one cloud-init cannot read either; one past a bound
		// of ours may hold what only its YAML shows (a write_files content in base64).
		d.limited = d.limited || limit
		return
	}
	if root == nil || root.Kind != yaml.MappingNode {
		return
	}
	c := cloudReader{d: d, pi: pi, chain: chain, depth: depth}
	defer func() {
		// Reading the tree is ours and is not known to panic; if it did, the text scan still
		// stands, and the scan says what it missed.
		if recover() != nil {
			d.note(fmt.Sprintf("cloud-config in part %s could not be read: scanned as text", where))
			d.limited = true
		}
	}()
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i].Value, root.Content[i+1]
		switch key {
		case "write_files":
			c.writeFiles(val)
		case "runcmd", "bootcmd":
			c.commands(key, val)
		case "chpasswd":
			c.chpasswd(val)
		case "users":
			for _, u := range seq(val) {
				c.user(u)
			}
		case "user":
			c.user(val)
		case "password":
			c.password(val, "the default user's password")
		case "ssh_keys":
			c.sshKeys(val)
		case "ca_certs", "ca-certs":
			c.caCerts(val)
		default:
			c.privateMaterial(val, safeKey(key), 0)
		}
	}
	if c.dropped > 0 {
		d.note(fmt.Sprintf("cloud-config in part %s: %d more values not scanned on their own (at most %d parts a document; the text was scanned)", where, c.dropped, maxCloudParts))
		d.limited = true
	}
}

// parseYAML parses data into its root node, or says why it did not: a parse error (its line
// only: a message may quote the input), too deep or too big a tree (limit: a bound of ours).
// yaml.v3 is not known to panic, but a panic here must not end the scan.
func parseYAML(data []byte) (root *yaml.Node, problem string, limit bool) {
	defer func() {
		if recover() != nil {
			root, problem, limit = nil, "could not be parsed", true
		}
	}()
	if yamlMarks(data) > 2*maxYAMLNodes {
		return nil, fmt.Sprintf("has more than %d YAML nodes", maxYAMLNodes), true
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
			return nil, "is not valid YAML (line " + m[1] + ")", false
		}
		return nil, "is not valid YAML", false
	}
	nodes := 0
	if !shallow(&doc, 0, &nodes) {
		if nodes > maxYAMLNodes {
			return nil, fmt.Sprintf("has more than %d YAML nodes", maxYAMLNodes), true
		}
		return nil, fmt.Sprintf("is nested deeper than %d levels", maxYAMLDepth), true
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, "", false
	}
	return doc.Content[0], "", false
}

var yamlErrLine = regexp.MustCompile(`line ([0-9]+)`)

// yamlMarks counts what starts or separates YAML nodes in data (line breaks, ",", ":", "["
// and "{"): about the number of nodes the parser would make, more for text in blocks.
func yamlMarks(data []byte) int {
	n := 0
	for _, c := range data {
		switch c {
		case '\n', ',', ':', '[', '{':
			n++
		}
	}
	return n
}

// shallow reports whether n nests at most maxYAMLDepth levels below depth and the tree has
// at most maxYAMLNodes nodes (counted in *nodes). Aliases are not followed.
func shallow(n *yaml.Node, depth int, nodes *int) bool {
	*nodes++
	if depth > maxYAMLDepth || *nodes > maxYAMLNodes {
		return false
	}
	for _, c := range n.Content {
		if !shallow(c, depth+1, nodes) {
			return false
		}
	}
	return true
}

// cloudReader reads one document's modules.
type cloudReader struct {
	d       *decoder
	pi      int // the document's part
	chain   []string
	depth   int
	parts   int
	dropped int
}

func seq(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

// field is the value of key in mapping n, or nil.
func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node) (string, bool) {
	if n == nil || n.Kind != yaml.ScalarNode {
		return "", false
	}
	return n.Value, true
}

// asWritten reports whether a scalar's value is in the document's text as it is, so the
// text scan sees what cloud-init reads: a literal block ("|"), or a one-line value written
// as it is. Folded blocks, quoted strings with escapes and multi-line plain scalars are
// not.
func (c *cloudReader) asWritten(n *yaml.Node) bool {
	if n.Style&yaml.LiteralStyle != 0 {
		return true
	}
	if strings.Contains(n.Value, "\n") || n.Tag == "!!binary" {
		return false
	}
	return strings.Contains(c.d.parts[c.pi].Text, n.Value)
}

// part decodes data as a part of its own, chain + steps, written to target. What a
// document adds counts against MaxDecoded, as what gzip inflates does.
func (c *cloudReader) part(data []byte, target string, steps ...string) {
	if c.parts >= maxCloudParts {
		c.dropped++
		return
	}
	if len(data) > c.d.budget {
		data, c.d.truncated = data[:c.d.budget], true
	}
	c.d.budget -= len(data)
	c.add(data, target, steps)
}

// add decodes data, already counted against the budget, as a part of its own.
func (c *cloudReader) add(data []byte, target string, steps []string) {
	c.parts++
	chain := c.chain
	for _, s := range steps {
		chain = with(chain, s)
	}
	saved := c.d.target
	c.d.target = target
	c.d.decode(data, chain, c.depth+len(steps))
	c.d.target = saved
}

// found records a secret read from the structure, at the document's line.
func (c *cloudReader) found(rule, detail string, line int, value string) {
	p := &c.d.parts[c.pi]
	p.found = append(p.found, cloudSecret{rule: rule, detail: detail, line: line, value: value})
}

// writeFiles: each file's content, decoded by its encoding, is scanned as a part of its own
// naming the file; content written as it is is scanned in the document's text, and a
// finding there names the file too.
func (c *cloudReader) writeFiles(n *yaml.Node) {
	for i, f := range seq(n) {
		content := field(f, "content")
		text, ok := scalar(content)
		if !ok || text == "" {
			continue
		}
		target := ""
		if p, ok := scalar(field(f, "path")); ok {
			target = safePath(p)
		}
		enc, _ := scalar(field(f, "encoding"))
		step := "cloud-config:write_files[" + strconv.Itoa(i) + "]"
		data, steps, ok := decodeContent(text, strings.ToLower(strings.TrimSpace(enc)), content.Tag == "!!binary")
		switch {
		case !ok:
			continue // cloud-init fails on it too; its text was scanned
		case len(steps) > 0 && steps[len(steps)-1] == "gzip":
			if c.parts >= maxCloudParts {
				c.dropped++
				continue
			}
			out, complete := c.d.gunzip(data) // counts against the budget itself
			if out == nil {
				continue // not gzip: cloud-init fails on it too
			}
			c.d.truncated = c.d.truncated || !complete
			c.add(out, target, append([]string{step}, steps...))
		case len(steps) > 0:
			c.part(data, target, append([]string{step}, steps...)...)
		case c.asWritten(content):
			c.region(content, target)
		default:
			// Scanned as cloud-init writes it; what the text scan finds on its line is in the
			// file too.
			c.region(content, target)
			c.part(data, target, step)
		}
	}
}

// region records the document's lines holding content as lines of the file target: a
// literal block's lines, or the line a value starts on.
func (c *cloudReader) region(content *yaml.Node, target string) {
	start, end := content.Line, content.Line
	if content.Style&yaml.LiteralStyle != 0 {
		start++ // the block starts below its "|"
		end = start + strings.Count(strings.TrimRight(content.Value, "\n"), "\n")
	}
	p := &c.d.parts[c.pi]
	p.regions = append(p.regions, region{start: start, end: end, target: target})
}

// decodeContent undoes a write_files encoding as cloud-init does (unknown encodings are
// text) but gzip, which is left for the caller's bounded gunzip; steps name what was and is
// to be undone.
func decodeContent(text, enc string, binary bool) (out []byte, steps []string, ok bool) {
	out = []byte(text)
	if binary {
		// !!binary is base64 in the YAML; cloud-init gets the bytes.
		if out, ok = b64(compactB64(out)); !ok {
			return nil, nil, false
		}
		steps = append(steps, "base64")
	}
	switch enc {
	case "b64", "base64":
		if out, ok = b64(compactB64(out)); !ok {
			return nil, nil, false
		}
		steps = append(steps, "base64")
	case "gz", "gzip":
		steps = append(steps, "gzip")
	case "gz+b64", "gz+base64", "gzip+b64", "gzip+base64":
		if out, ok = b64(compactB64(out)); !ok {
			return nil, nil, false
		}
		steps = append(steps, "base64", "gzip")
	}
	return out, steps, true
}

// compactB64 drops the whitespace base64 is wrapped with.
func compactB64(b []byte) []byte {
	return bytes.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, b)
}

// commands: runcmd and bootcmd items in list form are run without a shell, as argv; joined
// (each argument quoted as a shell would need it) they are the command line, scanned as
// such. Items written as strings are lines of the document already.
func (c *cloudReader) commands(module string, n *yaml.Node) {
	for i, item := range seq(n) {
		args := seq(item)
		if len(args) == 0 {
			continue
		}
		words := make([]string, 0, len(args))
		for _, a := range args {
			if v, ok := scalar(a); ok {
				words = append(words, shellQuote(v))
			}
		}
		c.part([]byte(strings.Join(words, " ")+"\n"), "", "cloud-config:"+module+"["+strconv.Itoa(i)+"]")
	}
}

// shellQuote quotes an argument the way a person would write it on a command line, so the
// command-line rules read it as they read a script.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`;&|<>(){}*?!#~") {
		return s
	}
	if !strings.Contains(s, "'") {
		return "'" + s + "'"
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(s) + `"`
}

// chpasswd: list: "user:password" lines (a string) or items; users: [{name, password,
// type}]. RANDOM asks cloud-init to make one up; type hash (or a crypt hash in the list
// form) is a hash.
func (c *cloudReader) chpasswd(n *yaml.Node) {
	if list := field(n, "list"); list != nil {
		if text, ok := scalar(list); ok {
			first := list.Line
			if list.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
				first++
			}
			for k, l := range strings.Split(text, "\n") {
				line := list.Line
				if list.Style&yaml.LiteralStyle != 0 {
					line = first + k
				}
				c.chpasswdEntry(l, line)
			}
		}
		for _, item := range seq(list) {
			if v, ok := scalar(item); ok {
				c.chpasswdEntry(v, item.Line)
			}
		}
	}
	for _, u := range seq(field(n, "users")) {
		pw := field(u, "password")
		v, ok := scalar(pw)
		if !ok {
			continue
		}
		typ, _ := scalar(field(u, "type"))
		switch {
		case strings.EqualFold(typ, "RANDOM") || v == "RANDOM" || v == "R":
		case strings.EqualFold(typ, "hash"):
			c.hash(v, pw.Line, "chpasswd users")
		default:
			c.plain(v, pw.Line, "chpasswd users")
		}
	}
}

func (c *cloudReader) chpasswdEntry(entry string, line int) {
	_, pw, ok := strings.Cut(strings.TrimSpace(entry), ":")
	if !ok || pw == "" || pw == "RANDOM" || pw == "R" {
		return
	}
	if cryptHash(pw) {
		c.hash(pw, line, "chpasswd list")
		return
	}
	c.plain(pw, line, "chpasswd list")
}

// user: a users item (or the user module): plain_text_passwd is a password; passwd and
// hashed_passwd are meant to hold a crypt hash, and a value that is none holds the password.
func (c *cloudReader) user(u *yaml.Node) {
	if u.Kind != yaml.MappingNode {
		return
	}
	if n := field(u, "plain_text_passwd"); n != nil {
		c.password(n, "plain_text_passwd")
	}
	for _, key := range []string{"passwd", "hashed_passwd"} {
		n := field(u, key)
		v, ok := scalar(n)
		if !ok || v == "" {
			continue
		}
		if cryptHash(v) {
			c.hash(v, n.Line, key)
		} else {
			c.plain(v, n.Line, key+", where cloud-init expects a hash")
		}
	}
}

func (c *cloudReader) password(n *yaml.Node, what string) {
	if v, ok := scalar(n); ok {
		c.plain(v, n.Line, what)
	}
}

func (c *cloudReader) plain(v string, line int, what string) {
	v = strings.TrimSpace(v)
	if placeholder(v) {
		return
	}
	c.found(ruleCloudPassword, "plaintext password in "+what, line, v)
}

func (c *cloudReader) hash(v string, line int, what string) {
	v = strings.TrimSpace(v)
	if !cryptHash(v) {
		if !placeholder(v) {
			c.found(ruleCloudPassword, "plaintext password in "+what+", where cloud-init expects a hash", line, v)
		}
		return
	}
	c.found(ruleCloudPasswordHash, cryptName(v)+" hash in "+what, line, v)
}

// cryptHash reports whether v is a crypt(3) hash as /etc/shadow holds: $id$[params$]salt$hash.
func cryptHash(v string) bool { return reCrypt.MatchString(v) }

var reCrypt = regexp.MustCompile(`^\$(?:1|2[abxy]?|5|6|y|gy|7|sha1|md5)\$[./A-Za-z0-9$=,]{8,}$`)

// cryptName names a crypt hash's scheme.
func cryptName(v string) string {
	id, _, _ := strings.Cut(v[1:], "$")
	switch id {
	case "1", "md5":
		return "MD5 crypt, weak"
	case "2", "2a", "2b", "2x", "2y":
		return "bcrypt"
	case "5":
		return "SHA-256 crypt"
	case "6":
		return "SHA-512 crypt"
	case "y", "gy", "7":
		return "yescrypt"
	case "sha1":
		return "SHA-1 crypt"
	}
	return "crypt"
}

// sshKeys: host keys cloud-init installs (rsa_private, ecdsa_private, ...).
func (c *cloudReader) sshKeys(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name := n.Content[i].Value
		if !hostKeyNames[name] {
			continue
		}
		c.key(n.Content[i+1], "cloud-config:ssh_keys."+name)
	}
}

var hostKeyNames = map[string]bool{"rsa_private": true, "dsa_private": true, "ecdsa_private": true, "ed25519_private": true}

// caCerts: certificates are public, but a private key pasted along with one is not.
func (c *cloudReader) caCerts(n *yaml.Node) {
	for i, item := range seq(field(n, "trusted")) {
		c.key(item, "cloud-config:ca_certs.trusted["+strconv.Itoa(i)+"]")
	}
}

// key scans a value holding a private key as a part of its own when the document's text
// does not show the key as cloud-init writes it.
func (c *cloudReader) key(n *yaml.Node, step string) {
	v, ok := scalar(n)
	if !ok || !strings.Contains(v, "PRIVATE KEY") || c.asWritten(n) {
		return
	}
	c.part([]byte(v), "", step)
}

// privateMaterial looks for private keys anywhere else in a module (chef's validation_key,
// salt_minion's private_key, ...), named by the module.
func (c *cloudReader) privateMaterial(n *yaml.Node, module string, depth int) {
	if depth > maxYAMLDepth {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		c.key(n, "cloud-config:"+module)
	case yaml.MappingNode, yaml.SequenceNode:
		for _, ch := range n.Content {
			c.privateMaterial(ch, module, depth+1)
		}
	}
}

// knownModules are the cloud-config keys a part may be named after; any other key is
// "other" (a part's name is never text of the input).
var knownModules = map[string]bool{}

func init() {
	for _, m := range strings.Fields(`ansible apk_repos apt bootcmd byobu_by_default ca_certs chef
		disk_setup drivers fan final_message fs_setup groups growpart hostname keyboard landscape
		locale lxd manage_etc_hosts mcollective mounts ntp packages phone_home power_state puppet
		random_seed reporting resolv_conf rh_subscription rsyslog runcmd salt_minion seed_random
		snap spacewalk ssh ssh_authorized_keys ssh_import_id timezone ubuntu_advantage
		ubuntu_pro updates vendor_data wireguard write_files yum_repos zypper`) {
		knownModules[m] = true
	}
}

func safeKey(k string) string {
	if knownModules[k] {
		return k
	}
	return "other"
}

// safePath is a write_files path fit for evidence: an absolute path of ordinary characters,
// at most 255 bytes, no name in it shaped like a token (16 characters or more mixing upper
// and lower case and digits); anything else is "". The path is input text, and evidence
// must never carry more of the input than it needs.
func safePath(p string) string {
	p = strings.TrimSpace(p)
	if len(p) > 255 || !strings.HasPrefix(p, "/") || !rePath.MatchString(p) {
		return ""
	}
	for _, name := range strings.Split(p, "/") {
		if len(name) >= 16 && strings.ContainsAny(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
			strings.ContainsAny(name, "abcdefghijklmnopqrstuvwxyz") && strings.ContainsAny(name, "0123456789") {
			return ""
		}
	}
	return p
}

var rePath = regexp.MustCompile(`^[A-Za-z0-9_./@+,=-]+$`)
