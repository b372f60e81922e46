package secrets

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func gzipB64(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// cloudDoc is a cloud-config document holding a fake secret in every shape the reader
// knows; want lists what each is found as.
func cloudDoc() (doc string, want []cloudWant) {
	pw := func(i int) string { return fmt.Sprintf("Kx%dqT7vR2mW9pL4z", i) }
	hash := "$6$rounds=4096$J86aZz0Q$YiW7wJ0Bw4YtZQjGZ8n1Qm0p3bDq9vZl7hT2cF4kX1sR6uN8eA5yL0oP3iM9gH2jK7dW4qS1tU6vB8nC0xZ."
	key := "-----BEGIN RSA PRIVATE KEY-----\\nMIIEpAIBAAKCAQEA1x8fQ2mZ7vK3pR9tW4yN6bH2cJ5dL8gF0sV3qX7uE1iO9aM2\\nkT6rY4wP8nB3hG5jD1fS7cZ0xQ9vL2mK4tR6yW8pN3bH5gJ7dF1sA0qX9uE2iO8\\n-----END RSA PRIVATE KEY-----\\n"
	doc = `#cloud-config
write_files:
  - path: /etc/app/plain.env
    content: |
      LOG_LEVEL=info
      API_SECRET=` + pw(1) + `
  - path: /etc/app/db.env
    encoding: b64
    content: ` + base64.StdEncoding.EncodeToString([]byte("DB_PASSWORD="+pw(2)+"\n")) + `
  - path: /etc/app/deploy.sh
    encoding: gzip+base64
    content: ` + gzipB64("#!/bin/sh\nmysql -uroot -p"+pw(3)+" -e 'select 1'\n") + `
  - path: /etc/app/raw.env
    encoding: gz
    content: !!binary |
      ` + gzipB64("REDIS_PASSWORD="+pw(4)+"\n") + `
  - path: /etc/app/quoted.env
    content: "LOG=1\nSMTP_PASSWORD=` + pw(5) + `\n"
runcmd:
  - [ mysql, -u, root, "-p` + pw(6) + `", -e, "select 1" ]
  - echo hello
bootcmd:
  - - sshpass
    - -p
    - ` + pw(7) + `
    - ssh
    - admin@10.0.0.5
chpasswd:
  expire: false
  users:
    - {name: root, password: ` + pw(8) + `, type: text}
    - {name: ops, password: '` + hash + `', type: hash}
    - {name: bob, type: RANDOM}
  list: [ "alice:` + pw(9) + `" ]
users:
  - default
  - name: deploy
    plain_text_passwd: ` + pw(10) + `
  - name: oops
    passwd: ` + pw(11) + `
ssh_keys:
  rsa_private: "` + key + `"
`
	want = []cloudWant{
		{"plain", "password-assignment", "/etc/app/plain.env", ""},
		{"cloud-config:write_files[1]>base64", "password-assignment", "/etc/app/db.env", ""},
		{"cloud-config:write_files[2]>base64>gzip", "mysql-password-argument", "/etc/app/deploy.sh", ""},
		{"cloud-config:write_files[3]>base64>gzip", "password-assignment", "/etc/app/raw.env", ""},
		// Found by the text scan first, on the line the file's content starts on.
		{"plain", "generic-api-key", "/etc/app/quoted.env", ""},
		{"cloud-config:runcmd[0]", "mysql-password-argument", "", ""},
		{"cloud-config:bootcmd[0]", "sshpass-password", "", ""},
		{"plain", ruleCloudPassword, "", "chpasswd users"},
		{"plain", ruleCloudPasswordHash, "", "SHA-512 crypt"},
		{"plain", ruleCloudPassword, "", "chpasswd list"},
		{"plain", ruleCloudPassword, "", "plain_text_passwd"},
		{"plain", ruleCloudPassword, "", "passwd, where cloud-init expects a hash"},
		// gitleaks finds the key in the escaped string too: the same key, reported once.
		{"plain", "private-key", "", ""},
	}
	return doc, want
}

type cloudWant struct{ part, rule, target, detail string }

// TestCloudConfigReadAsCloudInit: every shape of cloud-config the reader knows is found,
// named by its part, with the file it is written to and what it is.
func TestCloudConfigReadAsCloudInit(t *testing.T) {
	d := detector(t)
	doc, want := cloudDoc()
	s := d.ScanInput([]byte(doc), []byte("k"))
	if len(s.Notes) > 0 {
		t.Errorf("notes: %q", s.Notes)
	}
	got := s.Findings
	for _, w := range want {
		i := slices.IndexFunc(got, func(f Finding) bool {
			return f.Part == w.part && f.Rule == w.rule && f.Target == w.target && strings.Contains(f.Detail, w.detail)
		})
		if i < 0 {
			t.Errorf("no %s finding in part %s (target %q, detail %q)", w.rule, w.part, w.target, w.detail)
			continue
		}
		got = slices.Delete(got, i, i+1)
	}
	for _, f := range got {
		t.Errorf("unexpected: %+v", f)
	}
	// Lines are the document's: the hash is on the line that holds it.
	for _, f := range s.Findings {
		if f.Rule == ruleCloudPasswordHash {
			if line := strings.Split(doc, "\n")[f.Line-1]; !strings.Contains(line, "$6$rounds") {
				t.Errorf("hash reported at line %d: %q", f.Line, line)
			}
		}
	}
}

// TestCloudConfigInMIME: a text/cloud-config part is read as cloud-config even without its
// "#cloud-config" line, and its parts are named under the MIME part.
func TestCloudConfigInMIME(t *testing.T) {
	body := "write_files:\n  - path: /etc/db.env\n    encoding: base64\n    content: " +
		base64.StdEncoding.EncodeToString([]byte("DB_PASSWORD=Kx1qT7vR2mW9pL4z\n")) + "\n"
	msg := "Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n--b\nContent-Type: text/cloud-config\n\n" + body + "--b--\n"
	fs, _ := detector(t).ScanData([]byte(msg), []byte("k"))
	if len(fs) != 1 || fs[0].Part != "mime:1>cloud-config:write_files[0]>base64" || fs[0].Target != "/etc/db.env" {
		t.Errorf("%+v", fs)
	}
}

// TestCloudConfigBounds: a document too big, too deep, too many nodes or not YAML is
// scanned as text, with a note naming the part and why, and nothing is scanned less than
// the text: its plaintext secret is still found.
func TestCloudConfigBounds(t *testing.T) {
	d := detector(t)
	const secretLine = "  - echo 'root:Kx1qT7vR2mW9pL4z' | chpasswd\n"
	deep := "#cloud-config\nruncmd:\n" + secretLine + "x: " + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "\n"
	big := "#cloud-config\nruncmd:\n" + secretLine + "packages:\n" + strings.Repeat("  - "+strings.Repeat("p", 60)+"\n", (maxCloudConfig/64)+10)
	many := "#cloud-config\nruncmd:\n" + secretLine + "packages:\n" + strings.Repeat("  - a\n", maxYAMLNodes+10)
	broken := "#cloud-config\nruncmd:\n" + secretLine + "write_files: [\n  - :\n"
	// Few lines, many nodes: not parsed at all.
	marks := "#cloud-config\nruncmd:\n" + secretLine + "packages: [" + strings.Repeat("a,", 2*maxYAMLNodes) + "a]\n"
	for name, c := range map[string]struct {
		doc, note string
		limited   bool // a bound of ours, not a document cloud-init cannot read either
	}{
		"deep":   {deep, "nested deeper than 64 levels", true},
		"big":    {big, "over 1 MiB", true},
		"many":   {many, fmt.Sprintf("more than %d YAML nodes", maxYAMLNodes), true},
		"marks":  {marks, fmt.Sprintf("more than %d YAML nodes", maxYAMLNodes), true},
		"broken": {broken, "is not valid YAML (line", false},
	} {
		s := d.ScanInput([]byte(c.doc), []byte("k"))
		if len(s.Notes) != 1 || !strings.Contains(s.Notes[0], c.note) || !strings.Contains(s.Notes[0], "part plain") || s.Limited != c.limited {
			t.Errorf("%s: notes %q (limited %v), want one saying %q (limited %v)", name, s.Notes, s.Limited, c.note, c.limited)
		}
		if len(s.Findings) != 1 || s.Findings[0].Rule != "chpasswd-echo" {
			t.Errorf("%s: %+v, want the chpasswd password", name, s.Findings)
		}
	}
}

// TestCloudConfigNotSecrets: RANDOM passwords, references and placeholders, public keys
// and certificates, commands without secrets and write_files paths are no findings.
func TestCloudConfigNotSecrets(t *testing.T) {
	doc := `#cloud-config
chpasswd:
  users:
    - {name: root, type: RANDOM}
    - {name: bob, password: RANDOM}
  list: [ "alice:R", "carol:RANDOM" ]
users:
  - name: app
    plain_text_passwd: ${APP_PASSWORD}
    ssh_authorized_keys: [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq8jx2mQ0vYk3Tn7Rb9WcL5pHs1Ue4Fz6Da8Kw2Jy0N a@b" ]
write_files:
  - path: /etc/app/token-path
    encoding: b64
    content: ` + base64.StdEncoding.EncodeToString([]byte("TOKEN_FILE=/run/secrets/token\nDB_PASSWORD={{ db_password }}\n")) + `
runcmd:
  - [ mysql, -u, root, -p, -e, "select 1" ]
  - [ sh, -c, 'docker login -u AWS --password-stdin 1.dkr.ecr.eu-west-1.amazonaws.com' ]
ca_certs:
  trusted:
    - "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----\n"
`
	s := detector(t).ScanInput([]byte(doc), []byte("k"))
	if len(s.Findings) != 0 || len(s.Notes) != 0 {
		t.Errorf("%+v", s)
	}
}

// FuzzCloudConfig fuzzes the YAML of a cloud-config document: whatever it is, the reader
// stays within its bounds, names parts with its own steps, puts in evidence only a plain
// absolute path, and no finding holds the planted secret (a part, a target, a detail).
func FuzzCloudConfig(f *testing.F) {
	doc, _ := cloudDoc()
	f.Add([]byte(strings.TrimPrefix(doc, "#cloud-config\n")))
	for _, s := range []string{
		"write_files:\n  - path: /etc/{SECRET}\n    encoding: b64\n    content: " + base64.StdEncoding.EncodeToString([]byte("DB_PASSWORD={SECRET}\n")) + "\n",
		"write_files:\n  - path: /x\n    encoding: gz+b64\n    content: " + gzipB64("#cloud-config\nwrite_files: [{path: /y, encoding: b64, content: "+base64.StdEncoding.EncodeToString([]byte("token={SECRET}"))+"}]\n") + "\n",
		"runcmd:\n  - [ sshpass, -p, '{SECRET}', ssh, h ]\n  - &a [ mysql, '-p{SECRET}' ]\n  - *a\n",
		"chpasswd: {list: \"root:{SECRET}\\nbob:RANDOM\", users: [{name: a, password: '{SECRET}'}]}\n",
		"users: [{name: u, passwd: '{SECRET}', hashed_passwd: '$6$abcdefgh$" + strings.Repeat("x", 40) + "'}]\n",
		"ssh_keys: {ed25519_private: \"-----BEGIN OPENSSH PRIVATE KEY-----\\n{SECRET}\\n-----END OPENSSH PRIVATE KEY-----\"}\n",
		"chef: {validation_key: \"-----BEGIN RSA PRIVATE KEY-----\\n{SECRET}\\n-----END RSA PRIVATE KEY-----\"}\n{SECRET}: x\n",
		"ca_certs: {trusted: [\"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n-----BEGIN EC PRIVATE KEY-----\\n{SECRET}{SECRET}\\n-----END EC PRIVATE KEY-----\"]}\n",
		"bootcmd: [[sh, -c, 'net user Administrator {SECRET}']]\nuser: {name: a, plain_text_passwd: '{SECRET}'}\npassword: '{SECRET}'\n",
		"a: &x [1]\nb: [*x, *x, *x]\n",
		"[[[[[[[[",
	} {
		f.Add([]byte(s))
	}
	safe := func(p string) bool { return p == "" || safePath(p) == p }
	key := []byte("fuzz-key")
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.ReplaceAll(body, []byte("{SECRET}"), []byte(plantedSecret))
		raw := append([]byte("#cloud-config\n"), body...)
		dec := Decode(raw)
		total := 0
		for _, p := range dec.Parts {
			total += len(p.Text)
			if !chainRe.MatchString(p.Chain) || chainDepth(p.Chain) > maxDepth {
				t.Fatalf("chain %q", p.Chain)
			}
			if !safe(p.Target) {
				t.Fatalf("target %q", p.Target)
			}
		}
		if total > 2*len(raw)+MaxDecoded {
			t.Fatalf("decoded %d bytes from %d", total, len(raw))
		}
		for _, n := range dec.Notes {
			if strings.Contains(n, plantedSecret[:8]) {
				t.Fatalf("note holds the secret: %q", n)
			}
		}
		for _, fd := range fuzzDetector(t).ScanInput(raw, key).Findings {
			if !partRe.MatchString(fd.Part) || !ruleRe.MatchString(fd.Rule) || fd.Line < 1 || !safe(fd.Target) {
				t.Fatalf("finding with a field not of its own making: %+v", fd)
			}
			if s := fmt.Sprintf("%#v", fd); strings.Contains(s, plantedSecret[:12]) {
				t.Fatalf("finding holds the planted secret: %s", s)
			}
		}
	})
}
