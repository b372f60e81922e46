package secrets

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestWindowsFindWhatWholeTextFinds holds the windowed rules (window.go) to the same findings
// as running every rule over the whole text, on the user-data corpus and on texts built to
// sit at the edges of the windows: matches spanning lines, keywords far from each other.
func TestWindowsFindWhatWholeTextFinds(t *testing.T) {
	d := detector(t)
	whole := *d
	whole.whole = true
	key := []byte("window-test-key")

	texts := map[string]string{}
	files, err := corpusGlob()
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts[filepath.Base(f)] = string(b)
	}
	filler := strings.Repeat("echo nothing to see here\n", 30)
	texts["curl-continued"] = filler + "curl -s https://example.org/v1/items \\\n  -X POST \\\n\n  -d @body.json \\\n  -H \"Authorization: Bearer Zq8vLx2Pw7RkT4nYc9Bm\"\n" + filler
	texts["curl-user"] = filler + "curl --user deploy:Xk29fjq83HsZp0a https://repo.example.org/upload\n" + filler
	texts["generic-next-line"] = filler + "api_token =\n   \"e7Rk2Lq9Zx8Vb4Nm1Pw6Ty3Hc5Jd0Fg\"\n" + filler
	texts["generic-end"] = filler + "export SERVICE_SECRET=Uy7Tr5Ew3Qa1Sd9Fg2Hj4Kl6Zx8Cv0Bn"
	texts["assign-first-line"] = "db_password: Hq3Lm9Xp2Vr7Tz5K\n" + filler
	texts["docker-login-tab"] = filler + "docker\tlogin -p Wq9Er4Ty7Ui2Op5A registry.example.org\n"
	texts["non-ascii"] = "# Ünïcödé İstanbul ß\n" + filler + "password = \"Kx8Qm2Zr5Tw9Lp3V\"\n" + "ĞÜŞİÖÇ\ncurl -H 'X-Api-Key: Nd7Rk3Pw9Lq2Zx5Vb8Tm' https://x.example.org\n"
	texts["windows-of-many"] = strings.Repeat("token=abc\nkey\n", 200) + "access_key = \"Pz4Lk8Qw2Er6Ty0Ui3Op\"\n"
	texts["aws-bare-3-lines"] = filler + "AKIAZ7QK2MW5RT3XPLNB\n#\n#\nYm9vZ2xlYmFyZm9vYmF6cXV4Q29ycmVjdEhvcnNl1\n" + filler
	texts["aws-bare-4-lines"] = filler + "Ym9vZ2xlYmFyZm9vYmF6cXV4Q29ycmVjdEhvcnNl1\n#\n#\n#\nAKIAZ7QK2MW5RT3XPLNB\n" + filler
	texts["aws-session"] = filler + "aws_access_key_id=ASIAZ7QK2MW5RT3XPLNB\naws_secret_access_key=Ym9vZ2xlYmFyZm9vYmF6cXV4Q29ycmVjdEhvcnNl1\naws_session_token=" + strings.Repeat("IQoJb3JpZ2luX2VjEJr", 8) + "\n" + filler
	texts["jwt"] = filler + "TOKEN=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\n" + filler
	texts["curl-user-continued"] = filler + "curl -X POST \\\n  https://repo.example.org/upload \\\n  --user 'deploy:Xk29fjq83HsZp0a'\n" + filler
	vault := "s.Ab3dEf9hIjK1MnOp7rStUv2x"
	texts["vault-line-end"] = filler + "export VAULT_TOKEN=" + vault + "\n" + filler
	texts["vault-text-end"] = filler + "vault login " + vault
	texts["vault-crlf"] = strings.ReplaceAll(filler, "\n", "\r\n") + "VAULT_TOKEN='" + vault + "'\r\nls s.x\r\n"
	texts["vault-adjacent"] = filler + "a=" + vault + "\nb=s.Zz8yXx7wVv6uTt5sRr4qQp3o;\nls.Ab3dEf9hIjK1MnOp7rStUv2x\n" + filler
	texts["vault-hvs"] = filler + "token: hvs." + strings.Repeat("Ab3_dE-f9hKq7Lm2Np5Rs8Tu1Vw4Xy6Zz0", 3)[:100] + "\n\n" + filler
	var b strings.Builder
	for i := range 50 {
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(" curl \\\n")
	}
	b.WriteString("-H 'Authorization: Basic ZGVwbG95OlhrMjlmanE4M0hzWnAwYQ=='\n")
	texts["curl-chain"] = b.String()

	vaultCands := 0
	for name, s := range texts {
		for _, c := range sameAsReference(t, name+" (windowed, whole text)", d, &whole, s, key) {
			if c.rule == "vault-service-token" {
				vaultCands++
			}
		}
	}
	if vaultCands < 6 {
		t.Errorf("vault-service-token reported %d times over the vault texts; want at least 6", vaultCands)
	}
	// The edge texts must find something, or the comparison above proves nothing.
	for _, name := range []string{"vault-line-end", "vault-text-end", "vault-crlf", "vault-adjacent", "vault-hvs", "aws-bare-3-lines", "aws-session", "jwt", "curl-user-continued", "curl-continued", "curl-user", "generic-next-line", "generic-end", "assign-first-line", "docker-login-tab", "non-ascii", "windows-of-many"} {
		if fs, _ := d.ScanData([]byte(texts[name]), key); len(fs) == 0 {
			t.Errorf("%s: nothing found", name)
		}
	}
}

// TestStopwordsWithoutTries holds the detector whose allowlists keep their stop words as a
// list (stripStopwords) to the findings of the one with gitleaks' tries, on the corpus and on
// generic assignments whose values hold a stop word or not.
func TestStopwordsWithoutTries(t *testing.T) {
	d := detector(t)
	withTries := eagerDetector(t, false)
	texts := []string{
		"client_api_key = 'Zq8vLx2Pw7RkT4nYc_ec2_9Bm'\n", // "_ec2_" is a stop word
		"client_api_key = 'Zq8vLx2Pw7RkT4nYcAbout9Bm'\n", // "about", in upper case
		"client_api_key = 'Zq8vLx2Pw7RkT4nYcQx9Bm3Lk'\n", // none
		"service_token: \"aaaaaaK3mP9qLx2Vb7Nz4Wc8\"\n",  // "aaaaaa"
	}
	files, _ := corpusGlob()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(b))
	}
	key := []byte("stopword-test-key")
	reported := 0
	for i, s := range texts {
		cands := sameAsReference(t, fmt.Sprintf("text %d (without tries, with tries)", i), d, withTries, s, key)
		if i < 4 {
			reported += len(cands)
		}
	}
	// Some of the four must be dropped by a stop word and one reported, or this proves nothing.
	if reported == 0 || reported == 4 {
		t.Errorf("gitleaks reported %d of the 4 stop-word texts; want some but not all", reported)
	}
}

// sameAsReference scans s with d and with ref, reports (under label) where their findings or
// gitleaks' own candidates (before our rules cover them up) differ, and returns ref's
// candidates.
func sameAsReference(t *testing.T, label string, d, ref *Detector, s string, key []byte) []candidate {
	t.Helper()
	got, _ := d.ScanData([]byte(s), key)
	want, _ := ref.ScanData([]byte(s), key)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: found\n%+v\nthe reference found\n%+v", label, got, want)
	}
	gc, wc := sortedCands(d.gitleaks(newText(s, d.idx))), sortedCands(ref.gitleaks(newText(s, ref.idx)))
	if !reflect.DeepEqual(gc, wc) {
		t.Errorf("%s: gitleaks candidates %+v, the reference's %+v", label, gc, wc)
	}
	return wc
}

// sortedCands orders candidates (gitleaks reports rules in map order).
func sortedCands(cs []candidate) []candidate {
	slices.SortFunc(cs, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.line, b.line), strings.Compare(a.rule, b.rule), strings.Compare(a.value, b.value))
	})
	return cs
}

// TestAssignedAfter: every match of gitleaks' generic-api-key regex holds a keyword that
// assignedAfter accepts, over random lines made of the regex's own pieces; and a keyword
// followed by no assignment is refused.
func TestAssignedAfter(t *testing.T) {
	re := regexp.MustCompile(`(?i)[\w.-]{0,50}?(?:access|auth|(?-i:[Aa]pi|API)|credential|creds|key|passw(?:or)?d|secret|token)(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)[\x60'"\s=]{0,5}([\w.=-]{10,150}|[a-z0-9][a-z0-9+/]{11,}={0,3})(?:[\x60'"\s;]|\\[nr]|$)`)
	keywords := []string{"access", "api", "auth", "key", "credential", "creds", "passwd", "password", "secret", "token"}
	pieces := []string{"KEY", "Api", "token", "secret_", "passwd", " ", "\t", "\n", "'", `"`, "=", ":", ":=", "=>", "||", "?=", ",", ">", "-", ".", "_", "x", "Q9", "aB3dE5gH7jK9mN1pQ", "abcdefghijklmnop==", ";", "`", "/", "+", "é", "K"}
	rnd := rand.New(rand.NewPCG(1, 2))
	matched := 0
	for range 60000 {
		var b strings.Builder
		for range 1 + rnd.IntN(14) {
			b.WriteString(pieces[rnd.IntN(len(pieces))])
		}
		s := b.String()
		lower := strings.ToLower(s)
		for _, m := range re.FindAllStringIndex(s, -1) {
			matched++
			ok := false
			for _, kw := range keywords {
				for from := m[0]; !ok; {
					i := strings.Index(lower[from:m[1]], kw)
					if i < 0 {
						break
					}
					ok = assignedAfter(lower, from+i+len(kw))
					from += i + 1
				}
			}
			if !ok {
				t.Fatalf("%q: match %q holds no keyword assignedAfter accepts", s, s[m[0]:m[1]])
			}
		}
	}
	if matched < 1000 {
		t.Fatalf("only %d matches: the generator misses the regex", matched)
	}
	for _, s := range []string{"ssh-keygen -t ed25519", "apt-key adv --recv-keys", "token\n\n\n\n=x", "secret is out"} {
		lower := strings.ToLower(s)
		for _, kw := range keywords {
			if i := strings.Index(lower, kw); i >= 0 && assignedAfter(lower, i+len(kw)) {
				t.Errorf("%q: %s taken for assigned", s, kw)
			}
		}
	}
	for _, s := range []string{"API_KEY=x", "token: x", "secret \t'\n= x", "password => x", "key ?= x", "auth||x", "creds,x", "key" + strings.Repeat("a", 20) + "=x"} {
		lower := strings.ToLower(s)
		for _, kw := range keywords {
			if j := strings.Index(lower, kw); j >= 0 {
				if !assignedAfter(lower, j+len(kw)) {
					t.Errorf("%q: %s not taken for assigned", s, kw)
				}
				break
			}
		}
	}
}
