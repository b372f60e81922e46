package forwarder

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// awsCerts are AWS's RSA-2048 certificates for instance identity signatures, one per Region
// (certs/aws-rsa2048.pem says where they come from).
//
//go:embed certs/aws-rsa2048.pem
var awsCerts []byte

// Trust maps a Region to the certificates that may sign its instances' identity documents.
// Certificates listed under "*" apply to every Region (a test CA, or a PEM without Region
// headers).
type Trust map[string][]*x509.Certificate

// For returns the certificates for region: its own and those for every Region.
func (t Trust) For(region string) []*x509.Certificate {
	return append(append([]*x509.Certificate(nil), t[region]...), t["*"]...)
}

// AWSTrust returns the embedded AWS certificates.
func AWSTrust() (Trust, error) { return ParseTrust(awsCerts) }

// ParseTrust reads PEM certificates. A block's "Region" header (one Region or several,
// comma-separated) says which Regions it signs for; without one it signs for every Region.
func ParseTrust(b []byte) (Trust, error) {
	t := Trust{}
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("trust: certificate %d: %w", n+1, err)
		}
		regions := []string{"*"}
		if r := blk.Headers["Region"]; r != "" {
			regions = strings.Split(r, ",")
		}
		for _, r := range regions {
			r = strings.TrimSpace(r)
			t[r] = append(t[r], c)
		}
		n++
	}
	if n == 0 {
		return nil, errors.New("trust: no certificate found")
	}
	return t, nil
}

// LoadTrust returns the certificates to verify with: EC2SEC_TRUST_PEM when set (inline PEM,
// or the path of a PEM file), which replaces the embedded ones, else the embedded ones.
func LoadTrust(getenv func(string) string) (Trust, error) {
	v := getenv("EC2SEC_TRUST_PEM")
	if v == "" {
		return AWSTrust()
	}
	if !strings.Contains(v, "-----BEGIN") {
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("EC2SEC_TRUST_PEM: %w", err)
		}
		v = string(b)
	}
	t, err := ParseTrust([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("EC2SEC_TRUST_PEM: %w", err)
	}
	return t, nil
}
