package secrets

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	b.WriteString(s + "\n")
	return b.String()
}

func TestDecodeChain(t *testing.T) {
	script := "#!/bin/bash\necho hi\n"
	b64gz := wrap76(base64.StdEncoding.EncodeToString(gz(t, []byte(script))))
	mime := "Content-Type: multipart/mixed; boundary=\"XX\"\nMIME-Version: 1.0\n\n" +
		"--XX\nContent-Type: text/cloud-config\n\n#cloud-config\n" +
		"--XX\nContent-Type: text/x-shellscript\nContent-Transfer-Encoding: base64\n\n" + wrap76(base64.StdEncoding.EncodeToString([]byte(script))) +
		"--XX\nContent-Type: multipart/alternative; boundary=\"YY\"\n\n--YY\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\na=3Db soft=\nbreak\n--YY--\n" +
		"--XX--\n"
	cases := []struct {
		name string
		in   []byte
		want map[string]string // chain -> text
	}{
		{"plain", []byte(script), map[string]string{"plain": script}},
		{"base64>gzip", []byte(b64gz), map[string]string{"base64>gzip": script}},
		{"gzip>mime", gz(t, []byte(mime)), map[string]string{
			"gzip>mime:1": "#cloud-config", "gzip>mime:2": script, "gzip>mime:3>mime:1": "a=b softbreak",
			"gzip>mime:1>header":        "Content-Type: text/cloud-config",
			"gzip>mime:2>header":        "Content-Type: text/x-shellscript\nContent-Transfer-Encoding: base64",
			"gzip>mime:3>header":        "Content-Type: multipart/alternative; boundary=\"YY\"",
			"gzip>mime:3>mime:1>header": "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable",
		}},
		{"not base64: a word", []byte("helloworldhelloworld"), map[string]string{"plain": "helloworldhelloworld"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decode(c.in)
			got := map[string]string{}
			for _, p := range d.Parts {
				got[p.Chain] = strings.TrimSpace(p.Text)
			}
			for k, v := range c.want {
				if got[k] != strings.TrimSpace(v) {
					t.Errorf("part %s = %q, want %q (all: %q)", k, got[k], v, got)
				}
			}
			if len(got) != len(c.want) {
				t.Errorf("parts %q, want %d", got, len(c.want))
			}
		})
	}
}

func TestDecodeGzipBomb(t *testing.T) {
	// 40 MiB of zeros compresses to ~40 KiB: decoding must stop at MaxDecoded and say so.
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	zeros := make([]byte, 1<<20)
	for range 40 {
		w.Write(zeros)
	}
	w.Close()
	d := Decode(buf.Bytes())
	if !d.Truncated {
		t.Fatal("not truncated")
	}
	total := 0
	for _, p := range d.Parts {
		total += len(p.Text)
	}
	if total > MaxDecoded {
		t.Fatalf("decoded %d bytes, more than %d", total, MaxDecoded)
	}
}

func TestScanPairsRedactsAndFingerprints(t *testing.T) {
	d := detector(t)
	id, secret := testenv.FakeAWSKey(t, "AKIA")
	sid, ssecret := testenv.FakeAWSKey(t, "ASIA")
	token := "IQoJb3JpZ2luX2Vj" + testenv.RandString(t, 200, testenv.Alnum)
	text := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n[tmp]\naws_access_key_id=%s\naws_secret_access_key=%s\naws_session_token=%s\n", id, secret, sid, ssecret, token)
	key := []byte("k1")
	fs := d.Scan(text, "plain", key)
	if len(fs) != 2 {
		t.Fatalf("want 2 findings (one per key pair), got %+v", fs)
	}
	if fs[0].Kind != AWSLongLived || fs[0].Line != 2 || fs[0].Redacted != id[:4]+"..."+id[16:] {
		t.Errorf("first finding %+v", fs[0])
	}
	if fs[1].Kind != AWSSession || fs[1].Line != 6 {
		t.Errorf("second finding %+v", fs[1])
	}
	if fs[0].Fingerprint != Fingerprint(key, secret) {
		t.Error("fingerprint is not the keyed hash of the secret key")
	}
	if again := d.Scan(text, "plain", []byte("k2")); again[0].Fingerprint == fs[0].Fingerprint {
		t.Error("fingerprint does not depend on the key")
	}
	// Nothing of the secrets is in any field of a finding.
	for _, f := range fs {
		v := reflect.ValueOf(f)
		for i := range v.NumField() {
			s := fmt.Sprint(v.Field(i).Interface())
			for _, sec := range []string{secret, ssecret, token, id, sid} {
				for j := 0; j+8 <= len(sec); j++ {
					if strings.Contains(s, sec[j:j+8]) {
						t.Fatalf("field %s holds part of a secret", v.Type().Field(i).Name)
					}
				}
			}
		}
	}
}

func TestScanNotSecrets(t *testing.T) {
	d := detector(t)
	for _, text := range []string{
		"DB_PASSWORD=${DB_PASSWORD}\n",
		"export DB_PASSWORD=$(aws secretsmanager get-secret-value --secret-id x --query SecretString --output text)\n",
		"API_KEY=$(aws ssm get-parameter --name /x --with-decryption --query Parameter.Value --output text)\n",
		"aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
		"password: <your-password>\n",
		"ssh_authorized_keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq8jx2mQ0vYk3Tn7Rb9WcL5pHs1Ue4Fz6Da8Kw2Jy0N a@b\n",
		"passwd: $6$rounds=4096$saltsalt$3x4mpl3h4sh.abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789abcdefghijklmnopq\n",
		"password_min_length: 14\nsecret_name: prod/db\ntoken_ttl: 21600\n",
		"echo 6809dd0b3ec45fd6e992c19071d6b5253aed3ead7bf0686885a51d85c6643c66  f | sha256sum -c\n",
		"[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = default\ncredential_process = /usr/local/bin/get-creds\nsso_start_url = https://acme.awsapps.com/start\nsso_account_id = 123456789012\n",
	} {
		if fs := d.Scan(text, "plain", []byte("k")); len(fs) > 0 {
			t.Errorf("%q: false positive %+v", text, fs)
		}
	}
}

func TestScanWindowsBlocksAndLines(t *testing.T) {
	d := detector(t)
	pw := testenv.RandString(t, 12, testenv.Alnum) + "!"
	text := "<script>\necho hi\n</script>\n<powershell>\n$p = ConvertTo-SecureString '" + pw + "' -AsPlainText -Force\n</powershell>\n"
	raw := base64.StdEncoding.EncodeToString([]byte(text))
	fs, _ := d.ScanData([]byte(raw), []byte("k"))
	if len(fs) != 1 || fs[0].Part != "base64>powershell" || fs[0].Line != 5 || fs[0].Redacted != Redacted {
		t.Fatalf("got %+v", fs)
	}
}

func TestScanConcurrent(t *testing.T) {
	d := detector(t)
	id, secret := testenv.FakeAWSKey(t, "AKIA")
	text := "export AWS_ACCESS_KEY_ID=" + id + "\nexport AWS_SECRET_ACCESS_KEY=" + secret + "\npassword: " + testenv.RandString(t, 14, testenv.Alnum) + "\n"
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if fs := d.Scan(text, "plain", []byte("k")); len(fs) != 2 {
					t.Errorf("got %d findings, want 2", len(fs))
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkScanSmallFile(b *testing.B) {
	d := detector(b)
	text := strings.Repeat("export PATH=$PATH:/usr/local/bin\nalias ll='ls -l'\n", 40)
	for b.Loop() {
		d.Scan(text, "plain", []byte("k"))
	}
}

func TestScanDataSameSecretTwice(t *testing.T) {
	d := detector(t)
	pw := testenv.RandString(t, 12, testenv.Alnum) + "!"
	mime := "Content-Type: multipart/mixed; boundary=\"ZZ\"\n\n--ZZ\n\n#cloud-config\npassword: " + pw + "\n--ZZ\n\n#!/bin/bash\necho 'root:" + pw + "' | chpasswd\n--ZZ--\n"
	fs, _ := d.ScanData([]byte(mime), []byte("k"))
	if len(fs) != 1 || fs[0].Part != "mime:1" {
		t.Fatalf("want the secret once, where first seen: %+v", fs)
	}
}

// TestScanKeepsNoText: Scan and ScanAWS keep nothing of their text, so a caller may read the
// next file into the same memory (as the credentials probe does): findings made from a text
// are unchanged once its memory is overwritten, for every kind of finding.
func TestScanKeepsNoText(t *testing.T) {
	d, err := New()
	if err != nil {
		t.Fatal(err)
	}
	id, secret := testenv.FakeAWSKey(t, "AKIA")
	ghp := "ghp_" + testenv.RandString(t, 36, testenv.Alnum)
	texts := []string{
		"[default]\naws_access_key_id = " + id + "\naws_secret_access_key = " + secret + "\n",
		"<powershell>\n$env:GITHUB_TOKEN = \"" + ghp + "\"\n</powershell>\n",
		"export DB_PASSWORD=" + testenv.RandString(t, 16, testenv.Alnum) + "%q\n",
		"api_key: " + testenv.RandString(t, 32, testenv.Alnum) + "\n",
	}
	clone := func(fs []Finding) []Finding {
		if fs == nil {
			return nil
		}
		out := make([]Finding, len(fs))
		for i, f := range fs {
			out[i] = Finding{Rule: strings.Clone(f.Rule), Kind: f.Kind, Line: f.Line, Part: strings.Clone(f.Part),
				Redacted: strings.Clone(f.Redacted), Fingerprint: strings.Clone(f.Fingerprint)}
		}
		return out
	}
	for _, s := range texts {
		for _, aws := range []bool{false, true} {
			mem := []byte(s)
			text := unsafe.String(unsafe.SliceData(mem), len(mem))
			var got []Finding
			if aws {
				got = d.ScanAWS(text, "environ", []byte("k"))
			} else {
				got = d.Scan(text, "plain", []byte("k"))
			}
			if len(got) == 0 && (!aws || strings.Contains(s, id)) {
				t.Fatalf("no finding in %q (aws %v)", s, aws)
			}
			want := clone(got)
			for i := range mem {
				mem[i] = 'x'
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("findings of %q changed with its memory:\n%+v\nwas\n%+v", s, got, want)
			}
		}
	}
}
