package asff

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var host = Host{AccountID: "123456789012", Region: "cn-north-1", Partition: "aws-cn", InstanceARN: "arn:aws-cn:ec2:cn-north-1:123456789012:instance/i-1", Hostname: "h"}

func big() probes.Result {
	r := probes.NewResult("secret-in-local-file", probes.Failed, "/etc/app.conf", strings.Repeat("é∑", 2000))
	r.ID, r.Probe, r.Severity = "i-1/secret-in-local-file/abc", "credentials", probes.High
	r.Title = strings.Repeat("T", 300)
	r.Remediation = probes.Remediation{Text: strings.Repeat("ü", 900), URL: "https://example.com/fix"}
	r.Compliance = []string{"CIS AWS Foundations 5.6", "practice 4"}
	for i := range 80 {
		r = r.With(fmt.Sprintf("k%02d", i), strings.Repeat("v", 2000))
	}
	return r.With("line", 7).With("fingerprint", "hmac:abcd")
}

func TestFromResultLimits(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := FromResult(big(), host, Times{at, at, at, at}, Options{AgentVersion: "1.2.3"})
	if f.ProductArn != "arn:aws-cn:securityhub:cn-north-1:123456789012:product/123456789012/default" {
		t.Errorf("ProductArn %s", f.ProductArn)
	}
	if f.GeneratorID != "ec2sec/secret-in-local-file" || f.SchemaVersion != "2018-10-08" {
		t.Errorf("generator %s schema %s", f.GeneratorID, f.SchemaVersion)
	}
	for name, c := range map[string]struct {
		s string
		n int
	}{"Title": {f.Title, MaxTitle}, "Description": {f.Description, MaxDescription}, "Remediation": {f.Remediation.Recommendation.Text, MaxRemediation}} {
		if n := utf8.RuneCountInString(c.s); n > c.n || !utf8.ValidString(c.s) {
			t.Errorf("%s: %d runes (limit %d), valid %v", name, n, c.n, utf8.ValidString(c.s))
		}
	}
	other := f.Resources[0].Details.Other
	if len(other) > MaxOtherFields {
		t.Errorf("Details.Other has %d fields", len(other))
	}
	for k, v := range other {
		if utf8.RuneCountInString(k) > MaxOtherKey || utf8.RuneCountInString(v) > MaxOtherValue || v == "" {
			t.Errorf("Details.Other %q: key or value out of limits", k)
		}
	}
	if other["ec2sec/resource"] != "/etc/app.conf" || other["evidence/fingerprint"] != "hmac:abcd" {
		t.Errorf("resource detail missing: %v", other["ec2sec/resource"])
	}
	r := f.Resources[0]
	if r.Type != "AwsEc2Instance" || r.ID != host.InstanceARN || r.Partition != "aws-cn" || r.Region != "cn-north-1" {
		t.Errorf("resource %+v", r)
	}
	if f.Severity.Label != "HIGH" || f.FindingProviderFields.Severity.Label != "HIGH" || f.Compliance.Status != "FAILED" || f.RecordState != "ACTIVE" {
		t.Errorf("severity/compliance/record: %+v %+v %s", f.Severity, f.Compliance, f.RecordState)
	}
	if !slices.Contains(f.Types, "Sensitive Data Identifications/Passwords") || !slices.Contains(f.Types, "Software and Configuration Checks/Industry and Regulatory Standards/CIS AWS Foundations Benchmark") {
		t.Errorf("types %v", f.Types)
	}
	if f.ProductFields["ec2sec/agent_version"] != "1.2.3" || f.ProductFields["ec2sec/probe"] != "credentials" {
		t.Errorf("product fields %v", f.ProductFields)
	}
	if f.CreatedAt != "2026-03-01T12:00:00.000Z" {
		t.Errorf("CreatedAt %s", f.CreatedAt)
	}
	a := FromResult(big(), host, Times{at, at, at, at}, Options{Archived: true, ArchiveReason: "gone"})
	if a.RecordState != "ARCHIVED" || a.Compliance.Status != "PASSED" || a.Severity.Label != "INFORMATIONAL" || a.Description != "gone" {
		t.Errorf("archived: %s %s %s %s", a.RecordState, a.Compliance.Status, a.Severity.Label, a.Description)
	}
	body, _ := json.Marshal(map[string]any{"Findings": []Finding{f, a}})
	awsfake.ValidateBatchImportFindings(t, [][]byte{body})
	checkEnums(t, f)
	checkEnums(t, a)
}

// checkEnums checks the enum fields botocore's validator does not.
func checkEnums(t *testing.T, f Finding) {
	t.Helper()
	labels := []string{"INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"}
	if !slices.Contains(labels, f.Severity.Label) || !slices.Contains(labels, f.FindingProviderFields.Severity.Label) {
		t.Errorf("severity label %q", f.Severity.Label)
	}
	if !slices.Contains([]string{"PASSED", "WARNING", "FAILED", "NOT_AVAILABLE"}, f.Compliance.Status) {
		t.Errorf("compliance %q", f.Compliance.Status)
	}
	if !slices.Contains([]string{"ACTIVE", "ARCHIVED"}, f.RecordState) {
		t.Errorf("record state %q", f.RecordState)
	}
	if !slices.Contains([]string{"aws", "aws-cn", "aws-us-gov"}, f.Resources[0].Partition) {
		t.Errorf("partition %q", f.Resources[0].Partition)
	}
	for _, ty := range f.Types {
		ns, _, _ := strings.Cut(ty, "/")
		if !slices.Contains([]string{"Software and Configuration Checks", "TTPs", "Effects", "Unusual Behaviors", "Sensitive Data Identifications"}, ns) {
			t.Errorf("type namespace %q", ty)
		}
	}
}

func TestOffEC2(t *testing.T) {
	h := Host{Hostname: "build"}
	if ok, why := h.CanImport(); ok || why == "" {
		t.Fatal("off EC2 host importable")
	}
	f := FromResult(probes.NewResult("imds-v1-enabled", probes.Failed, "", "x"), h, Times{}, Options{})
	if f.Resources[0].Type != "Other" || f.Resources[0].ID != "host/build" {
		t.Errorf("resource %+v", f.Resources[0])
	}
}

func TestTrunc(t *testing.T) {
	if got := Trunc("héllo", 3); got != "hé…" {
		t.Errorf("Trunc = %q", got)
	}
	if got := Trunc("ok", 3); got != "ok" {
		t.Errorf("Trunc = %q", got)
	}
	if got := Trunc("a\xffb", 5); got != "ab" {
		t.Errorf("invalid UTF-8 kept: %q", got)
	}
}

// TestFromResultHostFacts: the AMI goes to Details.AwsEc2Instance.ImageId, the OS facts
// (which ASFF has no field for) to ProductFields; off EC2 there is no AwsEc2Instance.
func TestFromResultHostFacts(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := host
	h.ImageID, h.OS, h.Platform, h.PlatformVersion, h.KernelVersion, h.Arch = "ami-0123456789abcdef0", "linux", "ubuntu", "24.04", "6.8.0-1015-aws", "x86_64"
	r := probes.NewResult("imds-v1-enabled", probes.Failed, "", "v1")
	r.ID, r.Probe, r.Severity = "i-1/imds-v1-enabled/abc", "imds", probes.High
	f := FromResult(r, h, Times{at, at, at, at}, Options{AgentVersion: "1.2.3"})
	if d := f.Resources[0].Details; d == nil || d.AwsEc2Instance == nil || d.AwsEc2Instance.ImageID != h.ImageID {
		t.Errorf("Details %+v, want AwsEc2Instance.ImageId %s", d, h.ImageID)
	}
	for k, v := range map[string]string{"ec2sec/os": "linux", "ec2sec/platform": "ubuntu", "ec2sec/platform_version": "24.04", "ec2sec/kernel_version": "6.8.0-1015-aws", "ec2sec/arch": "x86_64"} {
		if f.ProductFields[k] != v {
			t.Errorf("ProductFields[%s] = %q, want %q", k, f.ProductFields[k], v)
		}
	}
	if _, ok := f.ProductFields["ec2sec/virtualization"]; ok {
		t.Errorf("an unknown fact is written: %v", f.ProductFields)
	}
	off := FromResult(r, Host{Hostname: "build", ImageID: "ami-0123456789abcdef0"}, Times{at, at, at, at}, Options{})
	if off.Resources[0].Details.AwsEc2Instance != nil {
		t.Errorf("AwsEc2Instance details on a resource of type %s", off.Resources[0].Type)
	}
}
