// Package asff turns ec2sec results into AWS Security Finding Format (ASFF) findings, as
// BatchImportFindings takes them and `scan --format asff` prints them, within AWS's documented
// field limits (text is cut by rune, never mid-character).
package asff

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ec2sec/ec2sec/probes"
)

// SchemaVersion is the only ASFF schema version there is.
const SchemaVersion = "2018-10-08"

// Limits from the ASFF reference (counted in characters, i.e. runes).
const (
	MaxTitle         = 256
	MaxDescription   = 1024
	MaxRemediation   = 512
	MaxURL           = 512
	MaxID            = 512
	MaxOtherFields   = 50
	MaxOtherKey      = 127  // "fewer than 128 characters"
	MaxOtherValue    = 1023 // "fewer than 1,024 characters"
	MaxProductFields = 50
	MaxProductKey    = 128
	MaxProductValue  = 2048
	MaxRequirements  = 32
	MaxTypes         = 50
	// MaxBatch is how many findings one BatchImportFindings call accepts.
	MaxBatch = 100
)

// Finding is one ASFF finding with the fields ec2sec fills. The JSON names are ASFF's.
type Finding struct {
	SchemaVersion         string                `json:"SchemaVersion"`
	ID                    string                `json:"Id"`
	ProductArn            string                `json:"ProductArn"`
	GeneratorID           string                `json:"GeneratorId"`
	AwsAccountID          string                `json:"AwsAccountId"`
	Region                string                `json:"Region,omitempty"`
	Types                 []string              `json:"Types"`
	FirstObservedAt       string                `json:"FirstObservedAt"`
	LastObservedAt        string                `json:"LastObservedAt"`
	CreatedAt             string                `json:"CreatedAt"`
	UpdatedAt             string                `json:"UpdatedAt"`
	Severity              Severity              `json:"Severity"`
	FindingProviderFields FindingProviderFields `json:"FindingProviderFields"`
	Title                 string                `json:"Title"`
	Description           string                `json:"Description"`
	Remediation           *Remediation          `json:"Remediation,omitempty"`
	ProductFields         map[string]string     `json:"ProductFields,omitempty"`
	Resources             []Resource            `json:"Resources"`
	Compliance            Compliance            `json:"Compliance"`
	RecordState           string                `json:"RecordState"`
}

// Severity is ASFF's severity object.
type Severity struct {
	Label    string `json:"Label"`
	Original string `json:"Original,omitempty"`
}

// FindingProviderFields is where a finding provider states severity and types, so that
// BatchUpdateFindings by analysts does not get overwritten on the next import.
type FindingProviderFields struct {
	Severity Severity `json:"Severity"`
	Types    []string `json:"Types"`
}

// Remediation carries the fix.
type Remediation struct {
	Recommendation Recommendation `json:"Recommendation"`
}

// Recommendation is a fix text and a link.
type Recommendation struct {
	Text string `json:"Text,omitempty"`
	URL  string `json:"Url,omitempty"`
}

// Resource is the thing a finding is about; for ec2sec always the instance (or the host).
type Resource struct {
	Type      string   `json:"Type"`
	ID        string   `json:"Id"`
	Partition string   `json:"Partition,omitempty"`
	Region    string   `json:"Region,omitempty"`
	Details   *Details `json:"Details,omitempty"`
}

// Details holds what ASFF has no typed field for, as at most 50 string pairs.
type Details struct {
	AwsEc2Instance *AwsEc2Instance   `json:"AwsEc2Instance,omitempty"`
	Other          map[string]string `json:"Other,omitempty"`
}

// AwsEc2Instance is the part of ASFF's AwsEc2InstanceDetails the agent knows from inside.
type AwsEc2Instance struct {
	ImageID string `json:"ImageId,omitempty"`
}

// Compliance is the result's status and the standards it maps to.
type Compliance struct {
	Status              string   `json:"Status"`
	RelatedRequirements []string `json:"RelatedRequirements,omitempty"`
}

// Host is who the finding is from: what Security Hub needs to file it.
type Host struct {
	AccountID   string
	Region      string
	Partition   string
	InstanceARN string // "" off EC2
	Hostname    string
	// ImageID is the instance's AMI (Details.AwsEc2Instance.ImageId); the OS facts have no
	// ASFF field and go to ProductFields as ec2sec/os, ec2sec/platform, … ("" = left out).
	ImageID                                                            string
	OS, Platform, PlatformVersion, KernelVersion, Arch, Virtualization string
}

// CanImport reports whether Security Hub could file findings of this host: it needs the
// account, region and partition (only IMDS tells them), and says why not otherwise.
func (h Host) CanImport() (bool, string) {
	if h.AccountID == "" || h.Region == "" || h.Partition == "" || h.InstanceARN == "" {
		return false, "Security Hub needs the instance's account, region and ARN, which only IMDS tells (not on EC2?)"
	}
	return true, ""
}

// ProductARN is the account's default product ARN, the one BatchImportFindings accepts for
// findings an account sends about itself.
func ProductARN(partition, region, account string) string {
	return fmt.Sprintf("arn:%s:securityhub:%s:%s:product/%s/default", partition, region, account, account)
}

// Times are a finding's timestamps. They come from the scan and the lifecycle state, never
// from the clock at send time, so re-sending a spooled finding is byte-identical.
type Times struct {
	FirstObserved time.Time
	LastObserved  time.Time
	Created       time.Time
	Updated       time.Time
}

// Options say how to build a finding.
type Options struct {
	AgentVersion string
	// Archived re-imports a finding that is fixed or gone: Compliance PASSED, RecordState
	// ARCHIVED, severity INFORMATIONAL.
	Archived bool
	// ArchiveReason replaces the description of an archived finding.
	ArchiveReason string
}

// FromResult converts one result.
func FromResult(r probes.Result, h Host, t Times, o Options) Finding {
	sev := r.Severity
	status := string(r.Status)
	record := "ACTIVE"
	desc := r.Reason
	if o.Archived {
		sev, status, record = probes.Informational, string(probes.Passed), "ARCHIVED"
		desc = cmp.Or(o.ArchiveReason, desc)
	}
	if sev == probes.SeverityUnset {
		sev = probes.Informational
	}
	types := Types(r.Check, r.Compliance)
	resType, resID := "AwsEc2Instance", h.InstanceARN
	if resID == "" {
		resType, resID = "Other", "host/"+cmp.Or(h.Hostname, "unknown")
	}
	f := Finding{
		SchemaVersion:         SchemaVersion,
		ID:                    Trunc(r.ID, MaxID),
		ProductArn:            ProductARN(h.Partition, h.Region, h.AccountID),
		GeneratorID:           Trunc("ec2sec/"+r.Check, MaxID),
		AwsAccountID:          h.AccountID,
		Region:                h.Region,
		Types:                 types,
		FirstObservedAt:       Stamp(t.FirstObserved),
		LastObservedAt:        Stamp(t.LastObserved),
		CreatedAt:             Stamp(t.Created),
		UpdatedAt:             Stamp(t.Updated),
		Severity:              Severity{Label: sev.String(), Original: sev.String()},
		FindingProviderFields: FindingProviderFields{Severity: Severity{Label: sev.String(), Original: sev.String()}, Types: types},
		Title:                 Trunc(cmp.Or(r.Title, r.Check), MaxTitle),
		Description:           Trunc(cmp.Or(strings.TrimSpace(desc), r.Title, r.Check), MaxDescription),
		ProductFields:         limitMap(productFields(h, r, cmp.Or(o.AgentVersion, "dev")), MaxProductFields, MaxProductKey, MaxProductValue),
		Resources: []Resource{{
			Type: resType, ID: resID, Partition: h.Partition, Region: h.Region,
			Details: &Details{Other: other(r)},
		}},
		Compliance:  Compliance{Status: status, RelatedRequirements: requirements(r.Compliance)},
		RecordState: record,
	}
	if resType == "AwsEc2Instance" && h.ImageID != "" {
		f.Resources[0].Details.AwsEc2Instance = &AwsEc2Instance{ImageID: h.ImageID}
	}
	if f.Resources[0].Partition == "" {
		f.Resources[0].Partition = "aws" // ASFF requires one of the partition names
	}
	if r.Remediation.Text != "" || r.Remediation.URL != "" {
		f.Remediation = &Remediation{Recommendation{Text: Trunc(r.Remediation.Text, MaxRemediation), URL: Trunc(r.Remediation.URL, MaxURL)}}
	}
	return f
}

// Stamp formats a finding timestamp as the ASFF examples do: UTC, milliseconds, "Z".
func Stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Types returns the ASFF finding types of a check (namespace/category/classifier).
func Types(check string, compliance []string) []string {
	out := []string{"Software and Configuration Checks/AWS Security Best Practices"}
	switch {
	case strings.HasPrefix(check, "cred-"), strings.HasPrefix(check, "secret-"), strings.HasPrefix(check, "userdata-"):
		out = append(out, "Sensitive Data Identifications/Passwords")
	case strings.HasPrefix(check, "ssh-listening"), strings.HasPrefix(check, "sg-"), check == "public-ipv4", check == "ssm-endpoints-unreachable":
		out = append(out, "Software and Configuration Checks/AWS Security Best Practices/Network Reachability")
	case strings.HasPrefix(check, "ebs-"), check == "ami-public":
		out = append(out, "Effects/Data Exposure")
	}
	if slices.ContainsFunc(compliance, func(s string) bool { return strings.HasPrefix(s, "CIS ") }) {
		out = append(out, "Software and Configuration Checks/Industry and Regulatory Standards/CIS AWS Foundations Benchmark")
	}
	return out
}

func requirements(c []string) []string {
	if len(c) == 0 {
		return nil
	}
	out := slices.Clone(c)
	if len(out) > MaxRequirements {
		out = out[:MaxRequirements]
	}
	for i := range out {
		out[i] = Trunc(out[i], 256)
	}
	return out
}

// other flattens the result's resource and evidence into Details.Other, within its limits.
// Evidence is never a secret (docs/json.md); non-string values are written as JSON.
func other(r probes.Result) map[string]string {
	m := map[string]string{"ec2sec/resource": r.Resource, "ec2sec/check": r.Check}
	for _, k := range slices.Sorted(maps.Keys(r.Evidence)) {
		v := r.Evidence[k]
		s, ok := v.(string)
		if !ok {
			b, err := json.Marshal(v)
			if err != nil {
				continue
			}
			s = string(b)
		}
		m["evidence/"+k] = s
	}
	return limitMap(m, MaxOtherFields, MaxOtherKey, MaxOtherValue)
}

// limitMap keeps at most n pairs (in key order, so the cut is stable), with keys and values
// cut to their limits; empty values are left out because ASFF refuses them.
func limitMap(m map[string]string, n, maxKey, maxValue int) map[string]string {
	out := make(map[string]string, min(len(m), n))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if len(out) == n {
			break
		}
		v := strings.TrimSpace(m[k])
		if v == "" {
			continue
		}
		out[Trunc(k, maxKey)] = Trunc(v, maxValue)
	}
	return out
}

// Trunc cuts s to at most n runes, ending in "…" when cut, and drops invalid UTF-8.
func Trunc(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n { // bytes >= runes
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// productFields are the agent's own fields of a finding: version, probe and check, and the
// host's OS facts that ASFF has no field for.
func productFields(h Host, r probes.Result, version string) map[string]string {
	m := map[string]string{"ec2sec/agent_version": version, "ec2sec/probe": r.Probe, "ec2sec/check": r.Check}
	for k, v := range map[string]string{
		"ec2sec/os": h.OS, "ec2sec/platform": h.Platform, "ec2sec/platform_version": h.PlatformVersion,
		"ec2sec/kernel_version": h.KernelVersion, "ec2sec/arch": h.Arch, "ec2sec/virtualization": h.Virtualization,
	} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}
