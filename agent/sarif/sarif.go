// Package sarif writes ec2sec results as a SARIF 2.1.0 log, for CI dashboards (GitHub code
// scanning and the like): one rule per check, one result per ec2sec result.
package sarif

import (
	"cmp"
	"strings"

	"github.com/ec2sec/ec2sec/probes"
)

// Version and schema of the SARIF this package writes.
const (
	Version = "2.1.0"
	Schema  = "https://json.schemastore.org/sarif-2.1.0.json"
)

// Log is a SARIF log with one run.
type Log struct {
	Schema  string `json:"$schema"`
	Version string `json:"version"`
	Runs    []Run  `json:"runs"`
}

// Run is one tool invocation.
type Run struct {
	Tool        Tool              `json:"tool"`
	Invocations []Invocation      `json:"invocations,omitempty"`
	Results     []Result          `json:"results"`
	Properties  map[string]string `json:"properties,omitempty"`
}

// Tool names ec2sec and its rules.
type Tool struct {
	Driver Driver `json:"driver"`
}

// Driver is ec2sec itself.
type Driver struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	InformationURI string `json:"informationUri"`
	Rules          []Rule `json:"rules"`
}

// Rule is one check of the catalog.
type Rule struct {
	ID               string         `json:"id"`
	Name             string         `json:"name"`
	ShortDescription Message        `json:"shortDescription"`
	Help             *Message       `json:"help,omitempty"`
	HelpURI          string         `json:"helpUri,omitempty"`
	Properties       map[string]any `json:"properties,omitempty"`
}

// Message is a SARIF text.
type Message struct {
	Text string `json:"text"`
}

// Invocation says when the scan ran and whether it succeeded.
type Invocation struct {
	ExecutionSuccessful bool   `json:"executionSuccessful"`
	StartTimeUTC        string `json:"startTimeUtc,omitempty"`
}

// Result is one ec2sec result.
type Result struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Kind                string            `json:"kind"`
	Level               string            `json:"level"`
	Message             Message           `json:"message"`
	Locations           []Location        `json:"locations,omitempty"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Properties          map[string]any    `json:"properties,omitempty"`
}

// Location is a file (physical) or anything else (logical: a process, a listener, the host).
type Location struct {
	PhysicalLocation *PhysicalLocation `json:"physicalLocation,omitempty"`
	LogicalLocations []LogicalLocation `json:"logicalLocations,omitempty"`
}

// PhysicalLocation is a file, with a line when known.
type PhysicalLocation struct {
	ArtifactLocation ArtifactLocation `json:"artifactLocation"`
	Region           *Region          `json:"region,omitempty"`
}

// ArtifactLocation is a file URI.
type ArtifactLocation struct {
	URI string `json:"uri"`
}

// Region is a line in a file.
type Region struct {
	StartLine int `json:"startLine"`
}

// LogicalLocation names a non-file resource.
type LogicalLocation struct {
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind,omitempty"`
}

// Input is what a SARIF log is built from (agent.Report, without importing agent).
type Input struct {
	AgentVersion string
	ScannedAt    string
	Host         string
	Results      []probes.Result
}

// securityScore maps a severity to GitHub's "security-severity" (a CVSS-like 0-10 score).
var securityScore = map[probes.Severity]string{
	probes.Critical: "9.5", probes.High: "8.0", probes.Medium: "5.5", probes.Low: "3.0", probes.Informational: "0.0",
}

// Build returns the SARIF log of the results. Rules are every check of the catalog that has a
// result, so rule indexes are stable within one log.
func Build(in Input) Log {
	rules := []Rule{}
	index := map[string]int{}
	addRule := func(r probes.Result) int {
		if i, ok := index[r.Check]; ok {
			return i
		}
		c, _ := probes.Lookup(r.Check)
		sev := cmp.Or(c.Severity, r.Severity)
		rule := Rule{
			ID:               r.Check,
			Name:             ruleName(r.Check),
			ShortDescription: Message{Text: cmp.Or(c.Title, r.Title, r.Check)},
			HelpURI:          cmp.Or(c.Remediation.URL, r.Remediation.URL),
			Properties: map[string]any{
				"security-severity": securityScore[sev],
				"tags":              append([]string{"security", "ec2sec/" + cmp.Or(c.Probe, r.Probe)}, r.Compliance...),
			},
		}
		if t := cmp.Or(c.Remediation.Text, r.Remediation.Text); t != "" {
			rule.Help = &Message{Text: t}
		}
		index[r.Check] = len(rules)
		rules = append(rules, rule)
		return len(rules) - 1
	}
	results := make([]Result, 0, len(in.Results))
	for _, r := range in.Results {
		kind, level := kindLevel(r)
		res := Result{
			RuleID:              r.Check,
			RuleIndex:           addRule(r),
			Kind:                kind,
			Level:               level,
			Message:             Message{Text: cmp.Or(r.Reason, r.Title, r.Check)},
			Locations:           []Location{location(r)},
			PartialFingerprints: map[string]string{"ec2secId/v1": r.ID},
			Properties:          map[string]any{"status": string(r.Status), "severity": r.Severity.String(), "resource": r.Resource},
		}
		results = append(results, res)
	}
	return Log{
		Schema:  Schema,
		Version: Version,
		Runs: []Run{{
			Tool: Tool{Driver: Driver{
				Name: "ec2sec", Version: cmp.Or(in.AgentVersion, "dev"),
				InformationURI: "https://github.com/ec2sec/ec2sec",
				Rules:          rules,
			}},
			Invocations: []Invocation{{ExecutionSuccessful: true, StartTimeUTC: in.ScannedAt}},
			Results:     results,
			Properties:  map[string]string{"host": in.Host},
		}},
	}
}

// kindLevel maps a status to SARIF's kind and level: only a failure has a level other than
// "none"; WARNING needs a person's review; NOT_AVAILABLE is "open" (could not decide).
func kindLevel(r probes.Result) (string, string) {
	switch r.Status {
	case probes.Failed:
		switch {
		case r.Severity >= probes.High:
			return "fail", "error"
		case r.Severity >= probes.Low:
			return "fail", "warning"
		default:
			return "fail", "note"
		}
	case probes.Warning:
		return "review", "none"
	case probes.Passed:
		return "pass", "none"
	default:
		return "open", "none"
	}
}

// location is the file a result is about when its resource is an absolute path, else a
// logical location (instance ARN, process, listener).
func location(r probes.Result) Location {
	path, _ := r.Evidence["path"].(string)
	if path == "" && strings.HasPrefix(r.Resource, "/") && !strings.HasPrefix(r.Resource, "/proc/") {
		path = r.Resource
	}
	if path != "" {
		pl := &PhysicalLocation{ArtifactLocation: ArtifactLocation{URI: "file://" + path}}
		if line := toInt(r.Evidence["line"]); line > 0 {
			pl.Region = &Region{StartLine: line}
		}
		return Location{PhysicalLocation: pl}
	}
	return Location{LogicalLocations: []LogicalLocation{{FullyQualifiedName: r.Resource, Kind: "resource"}}}
}

func toInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}

// ruleName turns "imds-v1-enabled" into "ImdsV1Enabled", SARIF's customary rule name form.
func ruleName(id string) string {
	var b strings.Builder
	for _, part := range strings.Split(id, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}
