package metadata

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzIdentityDocument: whatever IMDS answers, parsing never panics, yields valid UTF-8 and
// is stable: what was parsed, written back as JSON, parses to the same identity.
func FuzzIdentityDocument(f *testing.F) {
	for _, s := range []string{
		`{"accountId":"123456789012","architecture":"x86_64","availabilityZone":"eu-west-1a","imageId":"ami-0123456789abcdef0","instanceId":"i-0123456789abcdef0","instanceType":"t3.micro","pendingTime":"2024-01-01T00:00:00Z","privateIp":"10.0.0.1","region":"eu-west-1","version":"2017-09-30"}`,
		`{"instanceId":"i-1","region":"cn-north-1"}`, `{}`, `null`, `[]`, `{"instanceId":1}`, "{\"region\":\"\xff\"}", `{"instanceId":"i-1","instanceId":"i-2"}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseIdentityDocument(b)
		if err != nil {
			return
		}
		for _, v := range []string{d.InstanceID, d.AccountID, d.Region, d.ImageID} {
			if !utf8.ValidString(v) {
				t.Fatalf("invalid UTF-8 in %+v", d)
			}
			// Each byte of invalid UTF-8 becomes U+FFFD, three bytes: a field is at most
			// three times its bytes in the document.
			if len(v) > 3*len(b) {
				t.Fatalf("field longer than the document allows")
			}
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseIdentityDocument(out)
		if err != nil || again != d {
			t.Fatalf("%+v -> %s -> %+v, %v", d, out, again, err)
		}
		_ = PartitionOf(d.Region)
	})
}
