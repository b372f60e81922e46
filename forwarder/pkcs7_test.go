package forwarder

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/internal/testca"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

// Every embedded AWS certificate parses, is RSA-2048, and names its Region; the list covers
// the commercial, China and GovCloud partitions.
func TestAWSCertificatesParse(t *testing.T) {
	tr, err := AWSTrust()
	if err != nil {
		t.Fatal(err)
	}
	if len(tr["*"]) != 0 {
		t.Error("an embedded certificate names no Region: it would be trusted for every Region")
	}
	for region, cs := range tr {
		if len(cs) != 1 {
			t.Errorf("%s: %d certificates", region, len(cs))
		}
		pub, ok := cs[0].PublicKey.(*rsa.PublicKey)
		if !ok || pub.N.BitLen() != 2048 {
			t.Errorf("%s: not an RSA-2048 key", region)
		}
	}
	for _, r := range []string{"us-east-1", "us-west-2", "eu-west-1", "ap-southeast-4", "il-central-1", "ca-west-1", "cn-north-1", "us-gov-west-1"} {
		if len(tr[r]) == 0 {
			t.Errorf("no certificate for %s", r)
		}
	}
	if len(tr) < 33 {
		t.Errorf("%d Regions, want at least 33", len(tr))
	}
}

func TestTrustOverride(t *testing.T) {
	ca := testca.New(t, "override")
	inline := ca.PEM("us-east-1", "eu-west-1")
	p := filepath.Join(t.TempDir(), "trust.pem")
	os.WriteFile(p, []byte(ca.PEM()), 0o600)
	for name, v := range map[string]string{"inline": inline, "path": p} {
		tr, err := LoadTrust(func(k string) string {
			if k == "EC2SEC_TRUST_PEM" {
				return v
			}
			return ""
		})
		if err != nil {
			t.Fatal(name, err)
		}
		if len(tr.For("us-east-1")) != 1 || len(tr.For("ap-south-1")) != map[string]int{"inline": 0, "path": 1}[name] {
			t.Errorf("%s: %v", name, tr)
		}
	}
	if _, err := LoadTrust(func(string) string { return "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" }); err == nil {
		t.Error("a broken override was accepted")
	}
}

// The test CA's signatures verify in each shape PKCS#7 allows them; a changed byte of the
// document, a signature by another key, and a certificate embedded in the message do not.
func TestSignedDataVerify(t *testing.T) {
	ca, other := testca.New(t, "aws"), testca.New(t, "attacker")
	doc := testca.Document("i-0123456789abcdef0", "123456789012", "us-east-1")
	for _, o := range []testca.Options{{}, {Detached: true}, {NoAttributes: true}, {EmbedCert: true}} {
		der, err := DecodeSignature(ca.Sign(t, doc, o))
		if err != nil {
			t.Fatal(err)
		}
		sd, err := ParseSignedData(der)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if o.Detached != (sd.Content == nil) || (!o.Detached && string(sd.Content) != doc) {
			t.Errorf("%+v: content %q", o, sd.Content)
		}
		if err := sd.Verify([]byte(doc), []*x509Cert{ca.Cert}); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
		if err := sd.Verify([]byte(strings.Replace(doc, "i-0123", "i-0124", 1)), []*x509Cert{ca.Cert}); err == nil {
			t.Errorf("%+v: a tampered document verified", o)
		}
		if err := sd.Verify([]byte(doc), []*x509Cert{other.Cert}); err == nil {
			t.Errorf("%+v: verified against another key", o)
		}
	}
	// Signed by the attacker, the attacker's certificate embedded: never trusted.
	der, _ := DecodeSignature(other.Sign(t, doc, testca.Options{EmbedCert: true}))
	sd, err := ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.Verify([]byte(doc), []*x509Cert{ca.Cert}); err == nil {
		t.Error("a certificate embedded in the message was trusted")
	}
}

// openssl's PKCS#7 (the tool AWS's documentation verifies with) parses and verifies, both as
// DER and as the BER with indefinite lengths that -stream writes: the parser is not only
// consistent with the test's own builder.
func TestSignedDataFromOpenSSL(t *testing.T) {
	ossl, err := exec.LookPath("openssl")
	if err != nil {
		testenv.Missing(t, "openssl not found")
		return
	}
	ca := testca.New(t, "aws")
	dir := t.TempDir()
	doc := testca.Document("i-0aaaaaaaaaaaaaaaa", "123456789012", "us-east-1")
	keyDER := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509MarshalPKCS1(ca.Key)})
	os.WriteFile(filepath.Join(dir, "key.pem"), keyDER, 0o600)
	os.WriteFile(filepath.Join(dir, "cert.pem"), []byte(ca.PEM()), 0o600)
	os.WriteFile(filepath.Join(dir, "doc"), []byte(doc), 0o600)
	for _, extra := range [][]string{nil, {"-stream"}} {
		args := append([]string{"smime", "-sign", "-binary", "-nodetach", "-md", "sha256", "-noattr", "-nocerts",
			"-in", filepath.Join(dir, "doc"), "-signer", filepath.Join(dir, "cert.pem"), "-inkey", filepath.Join(dir, "key.pem"), "-outform", "DER"}, extra...)
		// -noattr is taken off below for the attribute form
		for _, attrs := range []bool{false, true} {
			a := args
			if attrs {
				a = removeArg(args, "-noattr")
			}
			out, err := exec.Command(ossl, a...).Output()
			if err != nil {
				t.Fatalf("openssl %v: %v", a, err)
			}
			sd, err := ParseSignedData(out)
			if err != nil {
				t.Fatalf("openssl %v output: %v", extra, err)
			}
			if !bytes.Equal(sd.Content, []byte(doc)) {
				t.Errorf("openssl %v: content %q", extra, sd.Content)
			}
			if err := sd.Verify([]byte(doc), []*x509Cert{ca.Cert}); err != nil {
				t.Errorf("openssl %v attrs %v: %v", extra, attrs, err)
			}
			// As IMDS serves it: base64 in lines of 64.
			b64 := base64.StdEncoding.EncodeToString(out)
			var lines []string
			for len(b64) > 64 {
				lines, b64 = append(lines, b64[:64]), b64[64:]
			}
			lines = append(lines, b64)
			if _, _, err := PKCS7Verifier(Trust{"us-east-1": {ca.Cert}})(sink.Proof{Document: doc, RSA2048: strings.Join(lines, "\n")}); err != nil {
				t.Errorf("openssl %v attrs %v, base64 lines: %v", extra, attrs, err)
			}
		}
	}
}

func removeArg(args []string, a string) []string {
	var out []string
	for _, x := range args {
		if x != a {
			out = append(out, x)
		}
	}
	return out
}

// Malformed input is an error, never a panic: truncations of a valid message at every
// length, and bytes flipped throughout it.
func TestSignedDataMalformed(t *testing.T) {
	ca := testca.New(t, "aws")
	der := ca.SignDER(t, []byte("{}"), testca.Options{})
	for n := range len(der) {
		if _, err := ParseSignedData(der[:n]); err == nil {
			t.Errorf("truncated at %d of %d: parsed", n, len(der))
		}
	}
	for i := range der {
		b := bytes.Clone(der)
		b[i] ^= 0xff
		ParseSignedData(b) // must not panic
	}
	for _, s := range []string{"", "!!!", "AAAA", strings.Repeat("A", maxSignature+4)} {
		if der, err := DecodeSignature(s); err == nil {
			if _, err := ParseSignedData(der); err == nil {
				t.Errorf("%.20q parsed", s)
			}
		}
	}
}
