package forwarder

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"

	_ "crypto/sha1" // registers the digests a SignedData may name
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// The PKCS#7 (RFC 2315) SignedData that IMDS dynamic/instance-identity/rsa2048 serves: one
// signer, RSA PKCS#1 v1.5, the identity document as its content and usually signed
// attributes (contentType, messageDigest). This is the part of PKCS#7 the forwarder needs,
// parsed with encoding/asn1: no certificate in the message is ever trusted (the signer is
// checked against AWS's certificate of the document's Region), and anything unexpected is
// an error.

// maxSignature bounds the signature as sent (base64); a real one is about 1.5 KB.
const maxSignature = 16 << 10

var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidRSA           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA1WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
)

var digests = map[string]crypto.Hash{
	"1.3.14.3.2.26":          crypto.SHA1,
	"2.16.840.1.101.3.4.2.1": crypto.SHA256,
	"2.16.840.1.101.3.4.2.2": crypto.SHA384,
	"2.16.840.1.101.3.4.2.3": crypto.SHA512,
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	ContentInfo      contentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      []signerInfo  `asn1:"set"`
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type signerInfo struct {
	Version                   int
	IssuerAndSerial           issuerAndSerial
	DigestAlgorithm           pkix.AlgorithmIdentifier
	AuthenticatedAttributes   asn1.RawValue `asn1:"optional,tag:0"`
	DigestEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedDigest           []byte
	UnauthenticatedAttributes asn1.RawValue `asn1:"optional,tag:1"`
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

// SignedData is a parsed PKCS#7 signature: its content (nil when detached) and one signer.
type SignedData struct {
	Content   []byte
	hash      crypto.Hash
	signed    []byte // the bytes the signature covers
	digest    []byte // messageDigest attribute, nil without signed attributes
	signature []byte
}

// DecodeSignature turns the rsa2048 text as IMDS serves it (base64, perhaps with line breaks
// or PEM armour) into DER.
func DecodeSignature(s string) ([]byte, error) {
	if len(s) > maxSignature {
		return nil, fmt.Errorf("signature larger than %d bytes", maxSignature)
	}
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "-----BEGIN PKCS7-----")
	s = strings.TrimSuffix(s, "-----END PKCS7-----")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return nil, errors.New("empty signature")
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("signature is not base64: %w", err)
	}
	return der, nil
}

// ParseSignedData parses a DER or BER PKCS#7 SignedData with exactly one signer.
func ParseSignedData(ber []byte) (*SignedData, error) {
	der, err := berToDER(ber)
	if err != nil {
		return nil, fmt.Errorf("pkcs7: %w", err)
	}
	var ci contentInfo
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil {
		return nil, fmt.Errorf("pkcs7: content info: %w", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("pkcs7: trailing data")
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, fmt.Errorf("pkcs7: content type %v is not signedData", ci.ContentType)
	}
	var sd signedData
	if rest, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("pkcs7: signed data: %v", cmpErr(err, "trailing data"))
	}
	if !sd.ContentInfo.ContentType.Equal(oidData) {
		return nil, fmt.Errorf("pkcs7: signed content type %v is not data", sd.ContentInfo.ContentType)
	}
	if len(sd.SignerInfos) != 1 {
		return nil, fmt.Errorf("pkcs7: %d signers, want 1", len(sd.SignerInfos))
	}
	out := &SignedData{}
	if len(sd.ContentInfo.Content.FullBytes) > 0 {
		// Bytes is what the explicit [0] wraps: the OCTET STRING.
		var octets []byte
		if rest, err := asn1.Unmarshal(sd.ContentInfo.Content.Bytes, &octets); err != nil || len(rest) > 0 {
			return nil, fmt.Errorf("pkcs7: content: %v", cmpErr(err, "trailing data"))
		}
		out.Content = octets
	}
	si := sd.SignerInfos[0]
	h, ok := digests[si.DigestAlgorithm.Algorithm.String()]
	if !ok {
		return nil, fmt.Errorf("pkcs7: unsupported digest algorithm %v", si.DigestAlgorithm.Algorithm)
	}
	switch a := si.DigestEncryptionAlgorithm.Algorithm; {
	case a.Equal(oidRSA), a.Equal(oidSHA1WithRSA), a.Equal(oidSHA256WithRSA), a.Equal(oidSHA384WithRSA), a.Equal(oidSHA512WithRSA):
	default:
		return nil, fmt.Errorf("pkcs7: unsupported signature algorithm %v", a)
	}
	out.hash, out.signature = h, si.EncryptedDigest
	if len(si.AuthenticatedAttributes.FullBytes) > 0 {
		var attrs []attribute
		// The attributes are signed as a SET OF, not as the [0] IMPLICIT they are sent as.
		signed := append([]byte{0x31}, si.AuthenticatedAttributes.FullBytes[1:]...)
		if rest, err := asn1.UnmarshalWithParams(signed, &attrs, "set"); err != nil || len(rest) > 0 {
			return nil, fmt.Errorf("pkcs7: signed attributes: %v", cmpErr(err, "trailing data"))
		}
		var ct asn1.ObjectIdentifier
		for _, a := range attrs {
			if len(a.Values) != 1 {
				return nil, fmt.Errorf("pkcs7: attribute %v has %d values", a.Type, len(a.Values))
			}
			switch {
			case a.Type.Equal(oidMessageDigest):
				if _, err := asn1.Unmarshal(a.Values[0].FullBytes, &out.digest); err != nil {
					return nil, fmt.Errorf("pkcs7: message digest: %w", err)
				}
			case a.Type.Equal(oidContentType):
				if _, err := asn1.Unmarshal(a.Values[0].FullBytes, &ct); err != nil {
					return nil, fmt.Errorf("pkcs7: content type attribute: %w", err)
				}
			}
		}
		if out.digest == nil || !ct.Equal(oidData) {
			return nil, errors.New("pkcs7: signed attributes lack messageDigest or contentType data")
		}
		out.signed = signed
	}
	return out, nil
}

func cmpErr(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

// Verify checks that content is what was signed and that one of certs signed it. It uses
// only the certificates' public keys: those of AWS's regional certificates, self-signed and
// valid for 180 years, so a chain or validity check would add nothing.
func (sd *SignedData) Verify(content []byte, certs []*x509.Certificate) error {
	if sd.Content != nil && !bytes.Equal(sd.Content, content) {
		return errors.New("the document differs from the signed content")
	}
	h := sd.hash.New()
	h.Write(content)
	sum := h.Sum(nil)
	signed := sum
	if sd.signed != nil {
		if !bytes.Equal(sd.digest, sum) {
			return errors.New("the document's digest differs from the signed messageDigest")
		}
		h := sd.hash.New()
		h.Write(sd.signed)
		signed = h.Sum(nil)
	}
	for _, c := range certs {
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			continue
		}
		if rsa.VerifyPKCS1v15(pub, sd.hash, signed, sd.signature) == nil {
			return nil
		}
	}
	return errors.New("the signature does not verify against the Region's certificate")
}

// maxBERDepth bounds nesting while normalising, so hostile input cannot exhaust the stack.
const maxBERDepth = 32

// berToDER rewrites BER's indefinite lengths and constructed strings as DER, which
// encoding/asn1 requires; openssl's PKCS#7 output, and so AWS's, may use both.
func berToDER(b []byte) ([]byte, error) {
	out, rest, err := berElem(b, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, errors.New("trailing data")
	}
	return out, nil
}

// berElem converts one element and returns it and what follows it.
func berElem(b []byte, depth int) (der, rest []byte, err error) {
	if depth > maxBERDepth {
		return nil, nil, errors.New("nested too deeply")
	}
	if len(b) < 2 {
		return nil, nil, errors.New("truncated element")
	}
	tagEnd := 1
	if b[0]&0x1f == 0x1f { // high tag number form
		for tagEnd < len(b) && b[tagEnd]&0x80 != 0 {
			tagEnd++
			if tagEnd > 4 {
				return nil, nil, errors.New("tag too long")
			}
		}
		tagEnd++
		if tagEnd >= len(b) {
			return nil, nil, errors.New("truncated tag")
		}
	}
	tag, constructed := b[:tagEnd], b[0]&0x20 != 0
	l := b[tagEnd]
	p := tagEnd + 1
	var body []byte
	switch {
	case l == 0x80: // indefinite: children until end-of-contents
		if !constructed {
			return nil, nil, errors.New("indefinite length on a primitive")
		}
		var kids [][]byte
		rest := b[p:]
		for {
			if len(rest) < 2 {
				return nil, nil, errors.New("missing end-of-contents")
			}
			if rest[0] == 0 && rest[1] == 0 {
				rest = rest[2:]
				break
			}
			k, r, err := berElem(rest, depth+1)
			if err != nil {
				return nil, nil, err
			}
			kids, rest = append(kids, k), r
		}
		return assemble(tag, kids), rest, nil
	case l&0x80 != 0:
		n := int(l & 0x7f)
		if n > 4 || p+n > len(b) {
			return nil, nil, errors.New("bad length")
		}
		size := 0
		for _, c := range b[p : p+n] {
			size = size<<8 | int(c)
		}
		p += n
		if size < 0 || p+size > len(b) {
			return nil, nil, errors.New("length past the end")
		}
		body, rest = b[p:p+size], b[p+size:]
	default:
		if p+int(l) > len(b) {
			return nil, nil, errors.New("length past the end")
		}
		body, rest = b[p:p+int(l)], b[p+int(l):]
	}
	if !constructed {
		return encode(tag, body), rest, nil
	}
	var kids [][]byte
	for len(body) > 0 {
		k, r, err := berElem(body, depth+1)
		if err != nil {
			return nil, nil, err
		}
		kids, body = append(kids, k), r
	}
	return assemble(tag, kids), rest, nil
}

// assemble encodes a constructed element from its converted children; a constructed OCTET
// STRING (BER only) becomes one primitive OCTET STRING of its pieces.
func assemble(tag []byte, kids [][]byte) []byte {
	if len(tag) == 1 && tag[0] == 0x24 {
		var joined []byte
		for _, k := range kids {
			_, body := derBody(k)
			joined = append(joined, body...)
		}
		return encode([]byte{0x04}, joined)
	}
	return encode(tag, bytes.Join(kids, nil))
}

// derBody returns a DER element's header length and body (the element is well formed: we
// encoded it).
func derBody(der []byte) (int, []byte) {
	p := 1
	if der[0]&0x1f == 0x1f {
		for der[p]&0x80 != 0 {
			p++
		}
		p++
	}
	l := der[p]
	p++
	if l&0x80 != 0 {
		p += int(l & 0x7f)
	}
	return p, der[p:]
}

func encode(tag, body []byte) []byte {
	out := append([]byte(nil), tag...)
	n := len(body)
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	case n < 0x10000:
		out = append(out, 0x82, byte(n>>8), byte(n))
	case n < 0x1000000:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		out = append(out, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, body...)
}
