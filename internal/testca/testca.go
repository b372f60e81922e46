// Package testca stands in for AWS's instance identity signing key in tests: a throwaway RSA
// key and self-signed certificate, and a minimal PKCS#7 SignedData builder (one signer,
// SHA-256, signed contentType and messageDigest attributes, the document attached) shaped
// like what IMDS dynamic/instance-identity/rsa2048 serves.
package testca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"sort"
	"testing"
	"time"
)

// CA is a signing key and its certificate.
type CA struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
	DER  []byte
}

// New makes a CA (RSA 2048, like AWS's).
func New(t testing.TB, name string) *CA {
	t.Helper()
	return NewBits(t, name, 2048)
}

// NewBits makes a CA with a key of the given size (simulations use smaller keys for speed).
func NewBits(t testing.TB, name string, bits int) *CA {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{Organization: []string{"ec2sec test"}, CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &CA{Key: k, Cert: c, DER: der}
}

// PEM returns the certificate as PEM, with a Region header when regions are given.
func (ca *CA) PEM(regions ...string) string {
	b := &pem.Block{Type: "CERTIFICATE", Bytes: ca.DER}
	if len(regions) > 0 {
		r := regions[0]
		for _, x := range regions[1:] {
			r += "," + x
		}
		b.Headers = map[string]string{"Region": r}
	}
	return string(pem.EncodeToMemory(b))
}

// Document is an instance identity document as IMDS serves it (pretty-printed, keys sorted).
func Document(instanceID, account, region string) string {
	m := map[string]string{
		"accountId": account, "architecture": "x86_64", "availabilityZone": region + "a",
		"imageId": "ami-0123456789abcdef0", "instanceId": instanceID, "instanceType": "t3.micro",
		"pendingTime": "2026-11-28T10:00:00Z", "privateIp": "10.0.0.12", "region": region, "version": "2017-09-30",
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := "{\n"
	for i, k := range keys {
		v, _ := json.Marshal(m[k])
		out += "  \"" + k + "\" : " + string(v)
		if i < len(keys)-1 {
			out += ","
		}
		out += "\n"
	}
	return out + "}"
}

// Options shape a signature for forgery tests.
type Options struct {
	Detached     bool // leave the document out of the message
	NoAttributes bool // sign the content's digest directly
	EmbedCert    bool // include the signer's certificate in the message (must not be trusted)
}

var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningTime   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSA           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
)

type algo struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

type attr struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

// Sign returns the base64 PKCS#7 SignedData of doc, as IMDS's rsa2048 answer.
func (ca *CA) Sign(t testing.TB, doc string, o Options) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(ca.SignDER(t, []byte(doc), o))
}

// SignDER returns the DER PKCS#7 SignedData of content.
func (ca *CA) SignDER(t testing.TB, content []byte, o Options) []byte {
	t.Helper()
	must := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	null := asn1.RawValue{Tag: asn1.TagNull}
	sum := sha256.Sum256(content)
	var authAttrs asn1.RawValue
	toSign := sum[:]
	if !o.NoAttributes {
		ct := must(asn1.Marshal(oidData))
		md := must(asn1.Marshal(sum[:]))
		st := must(asn1.Marshal(time.Now().UTC()))
		attrs := []attr{
			{oidContentType, []asn1.RawValue{{FullBytes: ct}}},
			{oidSigningTime, []asn1.RawValue{{FullBytes: st}}},
			{oidMessageDigest, []asn1.RawValue{{FullBytes: md}}},
		}
		set := must(asn1.MarshalWithParams(attrs, "set"))
		h := sha256.Sum256(set)
		toSign = h[:]
		set[0] = 0xa0 // sent as [0] IMPLICIT
		authAttrs = asn1.RawValue{FullBytes: set}
	}
	sig, err := rsa.SignPKCS1v15(rand.Reader, ca.Key, crypto.SHA256, toSign)
	if err != nil {
		t.Fatal(err)
	}
	type issuerAndSerial struct {
		Issuer asn1.RawValue
		Serial *big.Int
	}
	type signerInfo struct {
		Version                   int
		IssuerAndSerial           issuerAndSerial
		DigestAlgorithm           algo
		AuthenticatedAttributes   asn1.RawValue `asn1:"optional"`
		DigestEncryptionAlgorithm algo
		EncryptedDigest           []byte
	}
	type encap struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"optional"`
	}
	type signedData struct {
		Version          int
		DigestAlgorithms []algo `asn1:"set"`
		ContentInfo      encap
		Certificates     asn1.RawValue `asn1:"optional"`
		SignerInfos      []signerInfo  `asn1:"set"`
	}
	ci := encap{ContentType: oidData}
	if !o.Detached {
		ci.Content = explicit0(must(asn1.Marshal(content)))
	}
	sd := signedData{
		Version:          1,
		DigestAlgorithms: []algo{{oidSHA256, null}},
		ContentInfo:      ci,
		SignerInfos: []signerInfo{{
			Version:                   1,
			IssuerAndSerial:           issuerAndSerial{asn1.RawValue{FullBytes: ca.Cert.RawIssuer}, ca.Cert.SerialNumber},
			DigestAlgorithm:           algo{oidSHA256, null},
			AuthenticatedAttributes:   authAttrs,
			DigestEncryptionAlgorithm: algo{oidRSA, null},
			EncryptedDigest:           sig,
		}},
	}
	if o.EmbedCert {
		certs := must(asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: ca.DER}))
		sd.Certificates = asn1.RawValue{FullBytes: certs}
	}
	inner := must(asn1.Marshal(sd))
	return must(asn1.Marshal(struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue
	}{oidSignedData, explicit0(inner)}))
}

// explicit0 wraps an element in [0] EXPLICIT (encoding/asn1 writes a RawValue's FullBytes
// as they are, ignoring an explicit tag on its field).
func explicit0(inner []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner}
}
