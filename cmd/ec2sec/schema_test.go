package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ec2sec/ec2sec/internal/bench"
	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

// reportSchema compiles docs/ec2sec-v1.schema.json, formats (date-time) asserted.
func reportSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(), "docs", "ec2sec-v1.schema.json")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(path, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

func validate(s *jsonschema.Schema, report string) error {
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(report))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// TestJSONMatchesSchema holds the binary's real JSON reports to docs/ec2sec-v1.schema.json:
// a whole host (every probe, on EC2 with IMDSv1 open, the bench fixture's planted secrets,
// sshd, SSM and console findings), and an offline image (host fields null). A field the
// code adds must be added to the schema and docs/json.md.
func TestJSONMatchesSchema(t *testing.T) {
	schema := reportSchema(t)
	fix, err := bench.BuildSize(t.TempDir(), bench.Small)
	if err != nil {
		t.Fatal(err)
	}
	s := fakeimds.New(t)
	s.V1 = true
	s.HopLimit = 1
	reports := map[string]string{}
	r := ec2sec(t, []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + s.URL}, "scan", "--root", fix.Root, "--proc", fix.Proc, "--format", "json")
	if r.code != 0 {
		t.Fatalf("live scan: exit %d: %s", r.code, r.stderr)
	}
	reports["live host"] = r.stdout
	r = ec2sec(t, nil, "scan", "--root", fix.Root, "--format", "json")
	if r.code != 0 {
		t.Fatalf("offline scan: exit %d: %s", r.code, r.stderr)
	}
	reports["offline image"] = r.stdout
	for name, rep := range reports {
		if err := validate(schema, rep); err != nil {
			t.Errorf("%s: the report does not match the schema: %v", name, err)
		}
	}
	// The live report has what the schema's rules are about, so they were exercised.
	for _, want := range []string{`"status": "FAILED"`, `"status": "NOT_AVAILABLE"`, `"fingerprint":`, `"redacted": "AKIA...`, `"instance_id": "i-`} {
		if !strings.Contains(reports["live host"], want) {
			t.Errorf("the live report lacks %s", want)
		}
	}
	if !strings.Contains(reports["offline image"], `"instance_id": null`) {
		t.Errorf("the offline report has an instance id")
	}
}

// TestSchemaRejects: the schema is not vacuous; each change to a valid report that breaks a
// rule of docs/json.md is refused.
func TestSchemaRejects(t *testing.T) {
	schema := reportSchema(t)
	s := fakeimds.New(t)
	s.V1 = true
	s.HopLimit = 1
	r := ec2sec(t, []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + s.URL}, "scan", "--root", t.TempDir(), "--proc", t.TempDir(), "--probes", "imds", "--format", "json")
	if err := validate(schema, r.stdout); err != nil {
		t.Fatalf("a real report does not validate: %v", err)
	}
	for name, edit := range map[string]func(rep map[string]any, res map[string]any){
		"unknown top-level member": func(rep, _ map[string]any) { rep["extra"] = 1 },
		"other schema":             func(rep, _ map[string]any) { rep["schema"] = "ec2sec/v2" },
		"time not RFC 3339":        func(rep, _ map[string]any) { rep["scanned_at"] = "yesterday" },
		"host field missing":       func(rep, _ map[string]any) { delete(rep["host"].(map[string]any), "region") },
		"unknown status":           func(_, res map[string]any) { res["status"] = "ERROR" },
		"FAILED as INFORMATIONAL":  func(_, res map[string]any) { res["status"], res["severity"] = "FAILED", "INFORMATIONAL" },
		"PASSED with a severity":   func(_, res map[string]any) { res["status"], res["severity"] = "PASSED", "HIGH" },
		"id without its hash":      func(_, res map[string]any) { res["id"] = "i-0123456789abcdef0/imds-v1-enabled" },
		"more of a key than redacted": func(_, res map[string]any) {
			res["evidence"] = map[string]any{"rule": "aws-access-token", "source": "file", "redacted": "AKIAIOSFODNN7", "fingerprint": strings.Repeat("0", 32)}
		},
		"secret line 0": func(_, res map[string]any) {
			res["evidence"] = map[string]any{"rule": "x", "source": "file", "line": 0, "redacted": "<redacted>", "fingerprint": strings.Repeat("0", 32)}
		},
		"compliance unknown":     func(_, res map[string]any) { res["compliance"] = []any{"practice 13"} },
		"remediation not https":  func(_, res map[string]any) { res["remediation"].(map[string]any)["url"] = "http://example.com" },
		"result member unknown":  func(_, res map[string]any) { res["value"] = "the secret" },
		"summary count negative": func(rep, _ map[string]any) { rep["summary"].(map[string]any)["failed"] = -1 },
	} {
		var rep map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		edit(rep, rep["results"].([]any)[0].(map[string]any))
		var b bytes.Buffer
		json.NewEncoder(&b).Encode(rep)
		if validate(schema, b.String()) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
