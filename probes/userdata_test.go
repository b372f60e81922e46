//go:build unix

package probes

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/internal/fakeimds"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func TestUserDataLive(t *testing.T) {
	id, secret := testenv.FakeAWSKey(t, "AKIA")
	pw := testenv.RandString(t, 14, testenv.Alnum) + "#1"
	mime := "Content-Type: multipart/mixed; boundary=\"BB\"\nMIME-Version: 1.0\n\n" +
		"--BB\nContent-Type: text/cloud-config\n\n#cloud-config\npassword: " + pw + "\n" +
		"--BB\nContent-Type: text/x-shellscript\nContent-Transfer-Encoding: base64\n\n" +
		base64.StdEncoding.EncodeToString([]byte("#!/bin/bash\n# setup\nexport AWS_ACCESS_KEY_ID="+id+"\nexport AWS_SECRET_ACCESS_KEY="+secret+"\n")) + "\n--BB--\n"
	cases := []struct {
		name     string
		data     []byte
		status   Status
		findings map[string]int // part -> line
	}{
		{"none", nil, Passed, nil},
		{"clean", []byte("#!/bin/bash\nTOKEN=$(curl -sX PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')\n"), Passed, nil},
		{"gzip mime", gzipped(t, mime), Failed, map[string]int{"gzip>mime:1": 2, "gzip>mime:2": 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := userDataIMDS(t, "i-0aaaaaaaaaaaaaaa1", c.data)
			env := testEnv(t, withIMDS(srv.URL), withSecrets())
			rs, err := UserDataProbe{}.Run(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			live := byCheck(rs, "userdata-secret")
			if len(live) == 0 || live[0].Status != c.status {
				t.Fatalf("got %+v, want %s", live, c.status)
			}
			if c.status != Failed {
				if len(live) != 1 {
					t.Fatalf("want one result, got %+v", live)
				}
				return
			}
			if len(live) != len(c.findings) {
				t.Fatalf("want %d findings, got %+v", len(c.findings), live)
			}
			for _, r := range live {
				part, _ := r.Evidence["part"].(string)
				if want, ok := c.findings[part]; !ok || r.Evidence["line"] != want {
					t.Errorf("unexpected finding %v", r.Evidence)
				}
				if r.Resource != "imds:user-data" || r.Evidence["source"] != "imds-user-data" || r.Evidence[Fingerprint] == "" {
					t.Errorf("evidence %v", r.Evidence)
				}
				for _, k := range []string{"rule", "source", "path", "line", "part", "redacted", "fingerprint"} {
					if _, ok := r.Evidence[k]; !ok {
						t.Errorf("evidence lacks %s: %v", k, r.Evidence)
					}
				}
			}
		})
	}
}

func TestUserDataLiveNotAvailable(t *testing.T) {
	env := testEnv(t, withSecrets())
	rs, err := UserDataProbe{}.Run(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	if live := byCheck(rs, "userdata-secret"); len(live) != 1 || live[0].Status != NotAvailable {
		t.Fatalf("off EC2: %+v", live)
	}
}

func TestUserDataCached(t *testing.T) {
	id, secret := testenv.FakeAWSKey(t, "AKIA")
	pw := testenv.RandString(t, 12, testenv.Alnum) + "!x"
	root := t.TempDir()
	const current, earlier = "i-0ccccccccccccccc1", "i-0eeeeeeeeeeeeeee2"
	buildTree(t, root, []entry{
		{path: "/var/lib/cloud/instances/" + current + "/user-data.txt", content: "#!/bin/bash\necho clean\n", mode: 0o600},
		{path: "/var/lib/cloud/instances/" + earlier + "/user-data.txt", content: "#cloud-config\nchpasswd:\n  list: |\n    root:" + pw + "\n", mode: 0o600},
		{path: "/var/lib/cloud/instances/" + earlier + "/scripts/part-001", content: "#!/bin/bash\naws configure set aws_access_key_id " + id + "\naws configure set aws_secret_access_key " + secret + "\n", mode: 0o700},
		{path: "/var/lib/cloud/instances/" + earlier + "/scripts/vendor", dir: true},
		{path: "/var/lib/cloud/instances/" + earlier + "/user-data.txt.i", fifo: true}, // never opened
		{path: "/var/lib/cloud/instance", link: "/var/lib/cloud/instances/" + current},
		{path: "/var/lib/cloud/data/instance-id", content: current + "\n"},
		{path: "/Windows/Temp/EC2Launch123/UserScript.ps1", content: "<powershell>\nnet user ops " + pw + " /add\n</powershell>\n"},
	})
	srv := userDataIMDS(t, current, nil)
	env := testEnv(t, onRoot(root), withIMDS(srv.URL), withSecrets())
	rs, err := UserDataProbe{}.Run(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	cached := byCheck(rs, "userdata-cached-secret")
	if len(cached) != 3 {
		t.Fatalf("want 3 cached findings, got %d: %+v", len(cached), cached)
	}
	for _, r := range cached {
		if r.Status != Failed {
			t.Errorf("%+v", r)
		}
		if strings.Contains(r.Resource, earlier) {
			if !strings.Contains(r.Reason, "earlier instance") || !strings.Contains(r.Reason, "baked into the image") || r.Evidence["earlier_instance"] != true {
				t.Errorf("leftover not named: %s", r.Reason)
			}
		}
	}
	// The same tree scanned offline (--root, no IMDS): cloud-init's record names the current instance.
	env = testEnv(t, onRoot(root), withSecrets())
	env.Root = root
	rs, _ = UserDataProbe{}.Run(context.Background(), env)
	for _, r := range byCheck(rs, "userdata-cached-secret") {
		if strings.Contains(r.Resource, earlier) && r.Evidence["earlier_instance"] != true {
			t.Errorf("offline: leftover not recognised: %+v", r)
		}
	}
}

func TestUserDataCachedNone(t *testing.T) {
	env := testEnv(t, withSecrets())
	rs, _ := UserDataProbe{}.Run(context.Background(), env)
	if c := byCheck(rs, "userdata-cached-secret"); len(c) != 1 || c[0].Status != Passed {
		t.Fatalf("%+v", c)
	}
}

// TestUserDataCloudConfig: what the cloud-config reader finds reaches the results as the
// contract's evidence plus where cloud-init writes it (target_path) and what it is (detail);
// a password hash is MEDIUM, not the check's CRITICAL; a document read as text only says so.
func TestUserDataCloudConfig(t *testing.T) {
	pw := testenv.RandString(t, 12, testenv.Alnum) + "!x"
	hash := "$6$" + testenv.RandString(t, 8, testenv.Alnum) + "$" + testenv.RandString(t, 86, testenv.Alnum)
	root := t.TempDir()
	const current = "i-0ccccccccccccccc1"
	doc := "#cloud-config\nwrite_files:\n  - path: /etc/app/db.env\n    encoding: b64\n    content: " +
		base64.StdEncoding.EncodeToString([]byte("DB_PASSWORD="+pw+"\n")) + "\nusers:\n  - name: ops\n    passwd: '" + hash + "'\n"
	deep := "#cloud-config\nx: " + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "\n"
	buildTree(t, root, []entry{
		{path: "/var/lib/cloud/instances/" + current + "/user-data.txt", content: doc, mode: 0o600},
		{path: "/var/lib/cloud/instances/" + current + "/vendor-data.txt", content: deep, mode: 0o600},
		{path: "/var/lib/cloud/data/instance-id", content: current + "\n"},
	})
	env := testEnv(t, onRoot(root), withSecrets())
	env.Root = root
	rs, _ := UserDataProbe{}.Run(context.Background(), env)
	cached := byCheck(rs, "userdata-cached-secret")
	if len(cached) != 3 {
		t.Fatalf("want 2 findings and a WARNING, got %+v", cached)
	}
	for _, r := range cached {
		if r.Status == Warning {
			// The deep vendor data: its YAML was not read, which a limit decided.
			if !strings.Contains(r.Reason, "vendor-data.txt: cloud-config in part plain is nested deeper than 64 levels: scanned as text only") {
				t.Errorf("warning: %+v", r)
			}
			continue
		}
		switch r.Evidence["rule"] {
		case "password-assignment":
			if r.Evidence["part"] != "cloud-config:write_files[0]>base64" || r.Evidence["target_path"] != "/etc/app/db.env" ||
				!strings.Contains(r.Reason, "written to /etc/app/db.env") || r.Severity != SeverityUnset {
				t.Errorf("write_files: %+v", r)
			}
		case "cloud-config-password-hash":
			if r.Severity != Medium || r.Evidence["detail"] != "SHA-512 crypt hash in passwd" || !strings.Contains(r.Reason, "a password hash, not the password") {
				t.Errorf("hash: %+v", r)
			}
		default:
			t.Errorf("unexpected: %+v", r)
		}
	}
	// The deep document alone: scanned as text, and said: WARNING, no silent PASS.
	buildTree(t, root, []entry{{path: "/var/lib/cloud/instances/" + current + "/user-data.txt", content: "#!/bin/sh\necho clean\n", mode: 0o600}})
	rs, _ = UserDataProbe{}.Run(context.Background(), env)
	c := byCheck(rs, "userdata-cached-secret")
	if len(c) != 1 || c[0].Status != Warning || !strings.Contains(c[0].Reason, "nested deeper than 64 levels: scanned as text only") || c[0].Evidence["notes"] == nil {
		t.Errorf("%+v", c)
	}
	// Not YAML at all: cloud-init cannot read it either; a note, and PASS.
	buildTree(t, root, []entry{{path: "/var/lib/cloud/instances/" + current + "/vendor-data.txt", content: "#cloud-config\nruncmd: [\n  - :\n", mode: 0o600}})
	rs, _ = UserDataProbe{}.Run(context.Background(), env)
	c = byCheck(rs, "userdata-cached-secret")
	if len(c) != 1 || c[0].Status != Passed || !strings.Contains(c[0].Reason, "is not valid YAML (line") {
		t.Errorf("%+v", c)
	}
}

// userDataIMDS is IMDS for instance (in eu-west-1) with data as its user data (nil: none,
// a 404, as for an instance launched without).
func userDataIMDS(t *testing.T, instance string, data []byte) *fakeimds.Server {
	t.Helper()
	s := fakeimds.New(t)
	s.Set(func(s *fakeimds.Server) {
		s.Paths["dynamic/instance-identity/document"] = fakeimds.Document(instance, "eu-west-1")
		if data != nil {
			s.Paths["user-data"] = string(data)
		}
	})
	return s
}
