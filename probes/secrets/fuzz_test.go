package secrets

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for the user-data decoding chain and the detector. `go test` runs their seeds;
// `make fuzz` fuzzes each for FUZZTIME.

// fuzzSeeds are inputs shaped like what hosts really hold: the user-data corpus (scripts,
// cloud-config, MIME, gzip, base64, Windows), wrapped variants, and hostile shapes.
func fuzzSeeds(f *testing.F) {
	f.Helper()
	files, _ := corpusGlob()
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	mime := "Content-Type: multipart/mixed; boundary=\"BB\"\nMIME-Version: 1.0\n\n--BB\nContent-Type: text/cloud-config\nContent-Transfer-Encoding: base64\n\n" +
		base64.StdEncoding.EncodeToString([]byte("#cloud-config\npassword: hunter2Secret9\n")) +
		"\n--BB\nContent-Type: text/x-shellscript\nContent-Transfer-Encoding: quoted-printable\n\n#!/bin/sh\nexport DB_PASS=3Dabc=\n123xyzQ\n--BB--\n"
	nested := "Content-Type: multipart/mixed; boundary=\"O\"\n\n--O\nContent-Type: multipart/alternative; boundary=\"I\"\n\n--I\nContent-Type: text/plain\n\ntoken = s3cr3tT0kenValue\n--I--\n--O--\n"
	for _, s := range []string{
		"", "#!/bin/bash\necho hi\n", mime, nested,
		"#cloud-config\nchpasswd:\n  list: |\n    root:Sup3rSecretPw\n",
		"<powershell>\nnet user admin P4ssw0rdX /add\n</powershell>\n",
		"[default]\naws_access_key_id = AKIAQWERTYUIOPASDFGH\naws_secret_access_key = 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\n",
		"\x1f\x8b", "\x00\x00\xff\xfe", strings.Repeat("QUFB", 64), "Content-Type: multipart/mixed; boundary=\n\n--\n",
	} {
		f.Add([]byte(s))
	}
	f.Add(gzipBytes([]byte(mime)))
	f.Add([]byte(base64.StdEncoding.EncodeToString(gzipBytes([]byte(nested)))))
	f.Add(deepMultipart(12))
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// deepMultipart nests n multipart messages in each other.
func deepMultipart(n int) []byte {
	body := "password: innerSecretValue9\n"
	for i := n; i > 0; i-- {
		b := fmt.Sprintf("b%d", i)
		body = fmt.Sprintf("Content-Type: multipart/mixed; boundary=%q\n\n--%s\n%s\n--%s--\n", b, b, body, b)
	}
	return []byte(body)
}

// chainRe is what a Part's chain may be: steps the decoder names, never input text.
// A part's header ends a chain and is no level of decoding.
var chainRe = regexp.MustCompile(`^(plain|` + step + `(>` + step + `)*(>header)?)$`)

// step is one decoder step: an encoding undone, a MIME part, a cloud-config value read as
// its own part (named by the module and index, never by input text).
const step = `(gzip|base64|mime:[0-9]+|cloud-config:((write_files|runcmd|bootcmd|ca_certs\.trusted)\[[0-9]+\]|ssh_keys\.(rsa|dsa|ecdsa|ed25519)_private|[a-z_]+))`

func chainDepth(c string) int {
	if c == "plain" {
		return 0
	}
	return strings.Count(strings.TrimSuffix(c, ">header"), ">") + 1
}

// FuzzDecode: decoding never panics, stays within MaxDecoded beyond the input, names its
// parts only with its own steps and never nests deeper than maxDepth; a fully decoded leaf
// decodes to itself (idempotence).
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		d := Decode(raw)
		total := 0
		for _, p := range d.Parts {
			total += len(p.Text)
			if !chainRe.MatchString(p.Chain) {
				t.Fatalf("chain %q is not made of decoder steps", p.Chain)
			}
			if n := chainDepth(p.Chain); n > maxDepth {
				t.Fatalf("chain %q nests %d deep, more than %d", p.Chain, n, maxDepth)
			}
		}
		if total > len(raw)+MaxDecoded {
			t.Fatalf("decoded %d bytes from %d, more than the input plus MaxDecoded", total, len(raw))
		}
		if len(d.Parts) > (len(raw)+MaxDecoded)/2+1 {
			t.Fatalf("%d parts from %d bytes", len(d.Parts), len(raw))
		}
		if d.Truncated {
			return
		}
		for _, p := range d.Parts {
			if chainDepth(p.Chain) >= maxDepth {
				continue // emitted because of the depth bound, not because it is plain
			}
			if bytes.Contains(bytes.ToLower([]byte(p.Text[:min(len(p.Text), 4096)])), []byte("multipart/")) {
				continue // a broken multipart message, scanned as it is besides its parts
			}
			again := Decode([]byte(p.Text))
			// A cloud-config document adds the parts read from its YAML after itself.
			extra := slices.ContainsFunc(again.Parts[min(1, len(again.Parts)):], func(q Part) bool { return !strings.HasPrefix(q.Chain, "cloud-config:") })
			if len(again.Parts) == 0 || extra || again.Parts[0].Chain != "plain" || again.Parts[0].Text != p.Text {
				t.Fatalf("leaf %q (%q) decodes further: %d parts, first %q", p.Chain, trunc(p.Text), len(again.Parts), again.Parts[0].Chain)
			}
		}
	})
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

var (
	fuzzDetOnce sync.Once
	fuzzDet     *Detector
	fuzzDetErr  error
)

func fuzzDetector(t testing.TB) *Detector {
	fuzzDetOnce.Do(func() { fuzzDet, fuzzDetErr = New() })
	if fuzzDetErr != nil {
		t.Fatal(fuzzDetErr)
	}
	return fuzzDet
}

// plantedKeyID and plantedSecret replace the markers {ID} and {SECRET} in fuzz inputs, so the
// fuzzer can move a real-shaped key pair around any text.
const (
	plantedKeyID  = "AKIAZ7QW3ER4TY5UI6OP"
	plantedSecret = "q8Hf2kLm9Zx4Vb7Nc1Rt6Yw3Pj5Ds0Ga+Ke/Ui8O"
)

var (
	hexFP    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	ruleRe   = regexp.MustCompile(`^[a-z0-9-]+$`)
	keyIDRed = regexp.MustCompile(`^[A-Z0-9]{4}\.\.\.[A-Z2-7]{4}$`)
	partRe   = regexp.MustCompile(`^((plain|` + step + `(>` + step + `)*(>header)?)(>(powershell|script))?|powershell|script)$`)
)

// FuzzScanData: whatever the input, a finding's fields hold nothing taken from the text but
// the first and last four characters of an AWS key id: a rule id, a chain of decoder steps, a
// line number, a fixed redaction and a hex fingerprint. A planted secret key never shows.
func FuzzScanData(f *testing.F) {
	fuzzSeeds(f)
	for _, s := range []string{
		"aws_access_key_id={ID}\naws_secret_access_key={SECRET}\n",
		"export AWS_SECRET_ACCESS_KEY=\"{SECRET}\"\n",
		`{"AccessKeyId":"{ID}","SecretAccessKey":"{SECRET}"}`,
		"<powershell>\n$env:AWS_SECRET_ACCESS_KEY='{SECRET}'\n</powershell>",
		"mysql -uroot -p{SECRET} db\ncurl -u bob:{SECRET} https://x\nhttps://u:{SECRET}@host.example\n",
		// The command-line and SQL idioms (idioms_test.go), each with the planted secret.
		"mariadb -u a -p{SECRET} db\nmysqladmin -u root password {SECRET}\nwget --http-password={SECRET} https://x\n",
		"net user Administrator {SECRET}\nsshpass -p {SECRET} ssh h\nhtpasswd -nb admin {SECRET}\nhtpasswd -b f u '{SECRET}'\n",
		"CREATE USER 'a'@'%' IDENTIFIED BY '{SECRET}';\nALTER ROLE a WITH PASSWORD '{SECRET}';\nSET PASSWORD = PASSWORD('{SECRET}');\n",
		"redis://:{SECRET}@cache:6379\n$env:DB_PASSWORD = '{SECRET}'\n[Environment]::SetEnvironmentVariable(\"API_TOKEN\", \"{SECRET}\", \"Machine\")\n",
		"curl -s \\\n  -H 'Authorization: Bearer {SECRET}' \\\n  https://x\n",
	} {
		f.Add([]byte(s))
	}
	key := []byte("fuzz-key")
	f.Fuzz(func(t *testing.T, raw []byte) {
		d := fuzzDetector(t)
		raw = bytes.ReplaceAll(raw, []byte("{ID}"), []byte(plantedKeyID))
		raw = bytes.ReplaceAll(raw, []byte("{SECRET}"), []byte(plantedSecret))
		findings, _ := d.ScanData(raw, key)
		if len(findings) > len(raw)+MaxDecoded {
			t.Fatalf("%d findings from %d bytes", len(findings), len(raw))
		}
		for _, fd := range findings {
			if !ruleRe.MatchString(fd.Rule) || !partRe.MatchString(fd.Part) || !hexFP.MatchString(fd.Fingerprint) || fd.Line < 1 {
				t.Fatalf("finding with a field not of its own making: %+v", fd)
			}
			if fd.Redacted != Redacted && !keyIDRed.MatchString(fd.Redacted) {
				t.Fatalf("redaction %q is neither %q nor a key id's ends", fd.Redacted, Redacted)
			}
			if s := fmt.Sprintf("%#v", fd); strings.Contains(s, plantedSecret) || strings.Contains(s, plantedSecret[:12]) {
				t.Fatalf("finding holds the planted secret: %s", s)
			}
			if !utf8.ValidString(fd.Part) || !utf8.ValidString(fd.Rule) {
				t.Fatalf("finding is not valid UTF-8: %+v", fd)
			}
		}
	})
}

// TestDecodeNestedMultipartDepth is FuzzDecode's first crasher: multiparts nested in
// multiparts ignored maxDepth, so a small input recursed thousands of levels and named its
// parts with chains of tens of kilobytes. The innermost text is still scanned, as it is.
func TestDecodeNestedMultipartDepth(t *testing.T) {
	for _, n := range []int{200, 3000} { // 3000 levels exhaust MaxDecoded on the way down
		d := Decode(deepMultipart(n))
		if len(d.Parts) == 0 && !d.Truncated {
			t.Fatalf("%d levels: no parts", n)
		}
		for _, p := range d.Parts {
			if depth := chainDepth(p.Chain); depth > maxDepth {
				t.Fatalf("%d levels: chain nests %d deep (%d bytes), more than %d", n, depth, len(p.Chain), maxDepth)
			}
		}
	}
	found, _ := fuzzDetector(t).ScanData(deepMultipart(200), []byte("k"))
	if len(found) == 0 {
		t.Error("the innermost password is no longer found")
	}
}

// TestDecodeBombBound: a gzip bomb as small as real user data (16 KB) decodes to at most
// MaxDecoded, which is kept small enough that scanning it stays cheap (see
// BenchmarkScanDataBomb: one to two microseconds per decoded byte). At 16 MiB such an input
// cost 20-40 s of CPU, timing the userdata probe out.
func TestDecodeBombBound(t *testing.T) {
	if MaxDecoded > 1<<20 {
		t.Fatalf("MaxDecoded is %d MiB: scanning that much costs seconds per input", MaxDecoded>>20)
	}
	raw := gzipBytes([]byte(strings.Repeat("password = x\n", 8<<20)))
	if len(raw) > 256<<10 {
		t.Fatalf("bomb is %d bytes", len(raw))
	}
	d := Decode(raw)
	total := 0
	for _, p := range d.Parts {
		total += len(p.Text)
	}
	if !d.Truncated || total > MaxDecoded {
		t.Fatalf("decoded %d bytes (truncated %v), bound %d", total, d.Truncated, MaxDecoded)
	}
}

// BenchmarkScanDataBomb measures the worst case of one input: a gzip bomb that decodes to
// MaxDecoded bytes of lines every rule looks at.
func BenchmarkScanDataBomb(b *testing.B) {
	d := fuzzDetector(b)
	raw := gzipBytes([]byte(strings.Repeat("aws_secret_access_key = x password=y\n", MaxDecoded/30)))
	b.SetBytes(MaxDecoded)
	for b.Loop() {
		d.ScanData(raw, []byte("k"))
	}
}

// FuzzCloudConfigMIME fuzzes the part headers and bodies of a cloud-init MIME message (the
// shape `cloud-init devel make-mime` writes) rather than the whole input, so the fuzzer spends
// its time in part parsing and transfer decoding: every part found is named mime:N under the
// same bounds as FuzzDecode, and a planted password that no encoding can have transformed
// (no transfer encoding, no gzip, not all base64) is in the text of some part: no part of
// a message is dropped unscanned.
func FuzzCloudConfigMIME(f *testing.F) {
	for _, s := range [][2]string{
		{"Content-Type: text/cloud-config", "#cloud-config\npassword: {PW}\n"},
		{"Content-Type: text/x-shellscript\nContent-Transfer-Encoding: base64", base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\nexport DB_PASSWORD={PW}\n"))},
		{"Content-Type: text/x-shellscript\nContent-Transfer-Encoding: quoted-printable", "#!/bin/sh\nexport DB_PASSWORD=3D{PW}=\n\n"},
		{"Content-Type: multipart/alternative; boundary=\"in\"", "--in\nContent-Type: text/plain\n\npassword: {PW}\n--in--\n"},
		{"Content-Type: application/x-gzip", string(gzipBytes([]byte("password: {PW}\n")))},
		{"Content-Type: text/cloud-config\nContent-Transfer-Encoding: base64", "!!!not base64 {PW}"},
		{"Content-Type: text/x-shellscript\nX-Api-Token: {PW}", "#!/bin/sh\necho hi\n"},
		{"Content-Type: multipart/mixed; boundary=\"in\"", "--in\nX-Token: {PW}\n\n"},
		{"Content-Type: text/plain", "first\n--===b===--\npassword: {PW}\n"},
		{"", ""},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	const pw = "Zq8vR2mK7xW4pL9t"
	f.Fuzz(func(t *testing.T, header, body []byte) {
		header = bytes.ReplaceAll(header, []byte("{PW}"), []byte(pw))
		body = bytes.ReplaceAll(body, []byte("{PW}"), []byte(pw))
		msg := append([]byte("Content-Type: multipart/mixed; boundary=\"===b===\"\nMIME-Version: 1.0\n\n--===b===\n"), header...)
		msg = append(msg, "\n\n"...)
		msg = append(msg, body...)
		msg = append(msg, "\n--===b===--\n"...)
		d := Decode(msg)
		total := 0
		for _, p := range d.Parts {
			total += len(p.Text)
			if !chainRe.MatchString(p.Chain) || chainDepth(p.Chain) > maxDepth {
				t.Fatalf("chain %q", p.Chain)
			}
		}
		if total > len(msg)+MaxDecoded {
			t.Fatalf("decoded %d bytes from %d", total, len(msg))
		}
		lower := bytes.ToLower(msg)
		plain := !bytes.Contains(lower, []byte("encoding")) && !bytes.Contains(msg, []byte{0x1f, 0x8b}) && !d.Truncated
		inParts := func() bool {
			return slices.ContainsFunc(d.Parts, func(p Part) bool { return strings.Contains(p.Text, pw) })
		}
		if _, b64 := wholeBase64(body); plain && !b64 && bytes.Contains(body, []byte(pw)) && !inParts() {
			t.Fatalf("the password in the part body is in no decoded part: %+v", d.Parts)
		}
		// A header without an empty line is all header: nothing of it is decoded.
		allHeader := !bytes.Contains(header, []byte("\n\n")) && !bytes.Contains(header, []byte("\n\r\n")) &&
			!bytes.HasPrefix(header, []byte("\n")) && !bytes.HasPrefix(header, []byte("\r\n"))
		if plain && allHeader && bytes.Contains(header, []byte(pw)) && !inParts() {
			t.Fatalf("the password in the part header is in no decoded part: %+v", d.Parts)
		}
	})
}

// TestDecodeBrokenMultipartScanned holds FuzzCloudConfigMIME's crashers: a part whose header
// is not a header, a nested multipart without its boundary, and (found while fixing those) a
// preamble made text vanish from the scan, so a secret there was never looked at. So did a
// part's header, text after the first close delimiter (a CI run's crasher, f2c2b428...) and
// a preamble that starts like a delimiter ("--b-old").
func TestDecodeBrokenMultipartScanned(t *testing.T) {
	const pw = "Zq8vR2mK7xW4pL9t"
	for name, msg := range map[string]string{
		"broken part header":        "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nfirst part\n--b\nnot a header\n\nexport DB_PASSWORD=" + pw + "\n--b--\n",
		"no boundary":               "Content-Type: multipart/mixed; boundary=\"b\"\n\nexport DB_PASSWORD=" + pw + "\n",
		"nested no boundary":        "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: multipart/alternative; boundary=\"c\"\n\nexport DB_PASSWORD=" + pw + "\n--b--\n",
		"preamble":                  "Content-Type: multipart/mixed; boundary=\"b\"\n\nexport DB_PASSWORD=" + pw + "\n--b\nContent-Type: text/plain\n\nhello\n--b--\n",
		"part header":               "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\nX-Db-Password: " + pw + "\n\nhello\n--b--\n",
		"preamble like a delimiter": "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b-old\nexport DB_PASSWORD=" + pw + "\n--b\nContent-Type: text/plain\n\nhello\n--b--\n",
		"after first close":         "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nhello\n--b--\nexport DB_PASSWORD=" + pw + "\n--b--\n",
	} {
		found, _ := fuzzDetector(t).ScanData([]byte(msg), []byte("k"))
		if len(found) != 1 {
			t.Errorf("%s: %d findings, want the password: %+v", name, len(found), found)
		}
	}
}
