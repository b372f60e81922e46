package testenv

import (
	"crypto/rand"
	"math/big"
	"testing"
)

// Alnum is the alphabet of most generated secrets.
const Alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// RandString returns n characters drawn from alphabet with crypto/rand, so every planted
// secret is fresh and cannot be found in any file by accident.
func RandString(t testing.TB, n int, alphabet string) string {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			t.Fatal(err)
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

// FakeAWSKey returns a fresh access key id with the prefix ("AKIA", "ASIA") and a
// 40-character secret access key in the real shapes (the secret mixes cases and digits, as
// the detectors' entropy rules expect).
func FakeAWSKey(t testing.TB, prefix string) (id, secret string) {
	t.Helper()
	id = prefix + RandString(t, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
	return id, RandString(t, 36, Alnum+"/+") + "aZ9" + RandString(t, 1, Alnum)
}
