//go:build unix

package probes

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets for the probes' own small parsers and for the credentials probe end to end
// over a fuzzed file. `go test` runs the seeds; `make fuzz` fuzzes.

// FuzzIAMInfo: only a successful iam/info answer with an ARN yields one, taken from it.
func FuzzIAMInfo(f *testing.F) {
	for _, s := range []string{
		`{"Code":"Success","LastUpdated":"2024-01-01T00:00:00Z","InstanceProfileArn":"arn:aws:iam::123456789012:instance-profile/web","InstanceProfileId":"AIPAEXAMPLE"}`,
		`{"Code":"Failure"}`, `{"Code":"Success","InstanceProfileArn":""}`, `null`, `"arn:"`, "{\"Code\":\"Success\",\"InstanceProfileArn\":\"arn:\xff\"}", ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, info string) {
		arn, ok := parseIAMInfo(info)
		if !ok {
			if arn != "" {
				t.Fatalf("no profile but arn %q", arn)
			}
			return
		}
		if !strings.HasPrefix(arn, "arn:") || len(arn) > len(info) || !strings.Contains(info, "Success") {
			t.Fatalf("arn %q from %q", arn, info)
		}
	})
}

// FuzzCompareVersions: a total order on what it parses: reflexive and antisymmetric.
func FuzzCompareVersions(f *testing.F) {
	for _, s := range [][2]string{{"3.2.582.0", "3.2.1"}, {"1", "1.0.0"}, {"", "x"}, {"-1.2", "1.-2"}, {"99999999999999999999", "1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if compareVersions(a, a) != 0 {
			t.Fatalf("%q != itself", a)
		}
		if x, y := compareVersions(a, b), compareVersions(b, a); x != -y {
			t.Fatalf("compare(%q, %q) = %d but compare(%q, %q) = %d", a, b, x, b, a, y)
		}
	})
}

// FuzzHostPort: an endpoint that parses names a host and a TCP port the dialer accepts; a
// message about one never quotes what stands before its "@" (user:password).
func FuzzHostPort(f *testing.F) {
	for _, s := range []string{"https://ssm.eu-west-1.amazonaws.com", "http://127.0.0.1:8080/path", "vpce-1.ssm.eu-west-1.vpce.amazonaws.com:443", "https://[::1]:99999", "https://h:0", "://", "[::1", "h:-1", "",
		"https://admin:hunter2secret@ssm.example:99999", "https://admin:hunter2secret@[::1", "admin:hunter2secret@:443", "https://u:p%zzsecret@h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, msg := hostPort(s)
		if at := strings.LastIndex(s, "@"); at >= 0 {
			userinfo := s[:at]
			if i := strings.Index(userinfo, "://"); i >= 0 {
				userinfo = userinfo[i+3:]
			}
			// What a message quotes of the value is the host[:port] after its scheme; the rest is
			// fixed text ("https:@" is not quoted by a message saying "[https://]host").
			_, quoted, _ := strings.Cut(strings.TrimPrefix(msg, badEndpoint), "://")
			if len(userinfo) >= 6 && strings.Contains(quoted, userinfo) && !strings.Contains(s[at+1:], userinfo) {
				t.Fatalf("%q: message %q quotes the userinfo %q", s, msg, userinfo)
			}
		}
		if msg != "" {
			if host != "" || port != "" {
				t.Fatalf("%q: error %q with host %q port %q", s, msg, host, port)
			}
			return
		}
		n, err := strconv.Atoi(port)
		if host == "" || err != nil || n < 1 || n > 65535 {
			t.Fatalf("%q: host %q port %q", s, host, port)
		}
	})
}

// FuzzPortOf: a ListenStream value yields a TCP port or 0, never anything else.
func FuzzPortOf(f *testing.F) {
	for _, s := range []string{"22", "0.0.0.0:22", "[::]:2222", "/run/sshd.sock", "host:", "-1", "70000", "h:99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n := portOf(s); n < 0 || n > 65535 {
			t.Fatalf("portOf(%q) = %d", s, n)
		}
	})
}

// FuzzCredentialsFile runs the credentials probe over a host whose ~/.aws/credentials,
// /etc/environment and systemd unit are fuzz input, with a real key pair planted at the
// markers {ID} and {SECRET}: it never fails, and no result holds the secret key.
func FuzzCredentialsFile(f *testing.F) {
	for _, s := range []string{
		"[default]\naws_access_key_id = {ID}\naws_secret_access_key = {SECRET}\n",
		"[default]\r\naws_access_key_id={ID}\r\naws_secret_access_key={SECRET}\r\n[profile x]\nregion=eu-west-1\n",
		"[a]\n\x00aws_secret_access_key\x00=\x00{SECRET}\xff\n",
		"AWS_SECRET_ACCESS_KEY={SECRET}\nAWS_ACCESS_KEY_ID={ID}\n",
		"[Service]\nEnvironmentFile=/etc/environment\nEnvironmentFile=-/home/alice/.aws/credentials\nEnvironment=AWS_SECRET_ACCESS_KEY={SECRET}\n",
		"[default\naws_secret_access_key\n=\n{SECRET}", "",
	} {
		f.Add([]byte(s))
	}
	root := f.TempDir()
	for _, d := range []string{"etc/systemd/system", "home/alice/.aws"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"), 0o644)
	const id, secret = "AKIAZ7QW3ER4TY5UI6OP", "q8Hf2kLm9Zx4Vb7Nc1Rt6Yw3Pj5Ds0Ga+Ke/Ui8O"
	f.Fuzz(func(t *testing.T, b []byte) {
		b = bytes.ReplaceAll(b, []byte("{ID}"), []byte(id))
		b = bytes.ReplaceAll(b, []byte("{SECRET}"), []byte(secret))
		for _, p := range []string{"home/alice/.aws/credentials", "etc/environment", "etc/systemd/system/app.service"} {
			if err := os.WriteFile(filepath.Join(root, p), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		rs, err := CredentialsProbe{}.Run(context.Background(), testEnv(t, onRoot(root), withSecrets()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(rs)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(out, []byte(secret[:12])) || bytes.Contains(out, []byte(secret[len(secret)-12:])) {
			t.Fatalf("a result holds the planted secret: %s", out)
		}
		if len(rs) > 4*len(b)+16 {
			t.Fatalf("%d results from %d bytes", len(rs), len(b))
		}
	})
}
