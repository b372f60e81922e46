package agent

import (
	"bytes"
	"encoding/json"
	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// Planted secrets: none of them may appear in anything the agent writes or sends.
const (
	plantedKeyID      = "AKIAPLANTEDKEY123456"
	plantedSecret     = "wJalrXUtnFEMI/K7MDENG/PLANTEDSECRETxAMPLEKEY"
	plantedSigningKey = "signing-secret-PLANTED-9f8e7d6c5b4a39281706"
)

var plantedAll = []string{plantedKeyID, plantedSecret, plantedSigningKey, "role-secret-PLANTED", "role-session-token-PLANTED"}

// imdsFake is IMDS (internal/fakeimds) for one instance in us-east-1 whose user data holds
// planted secrets, with no instance profile attached and the kernel's default hop limit.
type imdsFake struct{ *fakeimds.Server }

func fakeIMDS(t *testing.T, instanceID string) *imdsFake {
	t.Helper()
	s := fakeimds.New(t)
	s.Set(func(s *fakeimds.Server) {
		s.HopLimit = 0
		s.Paths["dynamic/instance-identity/document"] = fakeimds.Document(instanceID, "us-east-1")
		s.Paths["dynamic/instance-identity/rsa2048"] = fakeRSA2048 // central mode's proof of origin; verified only by the forwarder's tests
		s.Paths["meta-data/hostname"] = "ip-10-0-0-1.ec2.internal"
		s.Paths["user-data"] = "#!/bin/bash\nexport AWS_ACCESS_KEY_ID=" + plantedKeyID + "\nexport AWS_SECRET_ACCESS_KEY=" + plantedSecret + "\n"
		delete(s.Paths, "meta-data/iam/info")
	})
	return &imdsFake{s}
}

// attachProfile attaches an instance profile: iam/info answers.
func (f *imdsFake) attachProfile() {
	f.Set(func(s *fakeimds.Server) { s.Paths["meta-data/iam/info"] = fakeimds.Instance()["meta-data/iam/info"] })
}

// cleanUserData is someone removing the secrets from the user data.
func (f *imdsFake) cleanUserData() {
	f.Set(func(s *fakeimds.Server) { s.Paths["user-data"] = "#!/bin/bash\nyum -y update\n" })
}

// fakeRSA2048 is what fakeIMDS serves as the identity's PKCS#7 signature (base64, lines of 64).
const fakeRSA2048 = "MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0B\nBwGggCSABIIB"

// testIdentity is the identity fakeIMDS serves.
func testIdentity(instanceID string) metadata.Identity {
	return metadata.Identity{InstanceID: instanceID, AccountID: "123456789012", Region: "us-east-1", Partition: "aws", Domain: "amazonaws.com", Hostname: "ip-10-0-0-1.ec2.internal"}
}

// synthetic builds a report with the given results (checks from the imds probe's catalog or
// any id), as Scan would: ids from the identity, summary counted.
func synthetic(id metadata.Identity, at time.Time, probesOK []string, rs ...probes.Result) *Report {
	r := &Report{Schema: Schema, ScannedAt: at.UTC().Truncate(time.Second), Host: hostOf(id, Facts{}), identity: id}
	for _, p := range probesOK {
		r.Probes = append(r.Probes, ProbeRun{Name: p, Status: "ok"})
	}
	for _, res := range rs {
		if res.Probe == "" {
			res.Probe = "imds"
		}
		if res.Title == "" {
			res.Title = "title of " + res.Check
		}
		if res.Severity == probes.SeverityUnset {
			res.Severity = probes.High
			if res.Status == probes.Passed || res.Status == probes.NotAvailable {
				res.Severity = probes.Informational
			}
		}
		if res.Evidence == nil {
			res.Evidence = map[string]any{}
		}
		if res.Resource == "" {
			res.Resource = hostResource(id)
		}
		res.Compliance = []string{"CIS AWS Foundations 5.6", "Security Hub EC2.8", "practice 1"}
		res.Remediation = probes.Remediation{Text: "fix it", URL: "https://docs.aws.amazon.com/"}
		res.ID = resultID(id, res)
		r.Results = append(r.Results, res)
		r.Summary.count(res.Status)
	}
	return r
}

// useFake points the SDK at the strict fake, with fast retries and the planted signing key.
func useFake(t *testing.T, f *awsfake.Server) {
	t.Helper()
	for k, v := range f.Env() {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSIGNINGKEY000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", plantedSigningKey)
}

func fastAWS() sink.AWSOptions {
	return sink.AWSOptions{MaxAttempts: 4, MaxBackoff: 50 * time.Millisecond, HTTPTimeout: 5 * time.Second}
}

func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	return cfg
}

// assertNoLeak fails when any planted secret appears in data.
func assertNoLeak(t *testing.T, what string, data []byte) {
	t.Helper()
	for _, p := range plantedAll {
		if bytes.Contains(data, []byte(p)) {
			t.Errorf("%s leaks planted secret %q", what, p)
		}
	}
}

// assertDirNoLeak checks every file under dir.
func assertDirNoLeak(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			assertNoLeak(t, p, b)
		}
		return nil
	})
}

func decodeFinding(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func field(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func identityOff(hostname string) metadata.Identity {
	return metadata.Identity{Hostname: hostname, Reason: "not on EC2"}
}

// results are the report's results of one check.
func results(r *Report, check string) []probes.Result {
	var out []probes.Result
	for _, res := range r.Results {
		if res.Check == check {
			out = append(out, res)
		}
	}
	return out
}
