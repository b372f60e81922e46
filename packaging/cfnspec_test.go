package packaging

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/intrinsics"
	"github.com/awslabs/goformation/v7/schema"
	"gopkg.in/yaml.v3"
)

// The central stack against the CloudFormation resource specification, through goformation
// (test-only): its typed resources refuse unknown properties when the template is decoded,
// and its JSON schema (generated from the resource specification) says which properties
// each resource and nested property type has and which are required. Intrinsic functions
// are left as they are: a value that is an intrinsic ({"Ref": ...}, {"Fn::...": ...}) stands
// for whatever type the property wants.

const centralStack = "cloudformation/ec2sec-central.yaml"

// templateJSON reads a YAML template (long-form intrinsics only) as JSON.
func templateJSON(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return j
}

// cfnSchema is the part of goformation's JSON schema the check reads.
type cfnSchema struct {
	Definitions map[string]*schemaNode `json:"definitions"`
}

type schemaNode struct {
	Ref                  string                 `json:"$ref"`
	Type                 any                    `json:"type"`
	Properties           map[string]*schemaNode `json:"properties"`
	Required             []string               `json:"required"`
	Items                *schemaNode            `json:"items"`
	Enum                 []any                  `json:"enum"`
	AdditionalProperties any                    `json:"additionalProperties"`
	PatternProperties    map[string]*schemaNode `json:"patternProperties"`
	AnyOf                []*schemaNode          `json:"anyOf"`
}

func loadSchema(t testing.TB) *cfnSchema {
	t.Helper()
	var s cfnSchema
	if err := json.Unmarshal([]byte(schema.CloudformationSchema), &s); err != nil {
		t.Fatalf("goformation schema: %v", err)
	}
	return &s
}

// intrinsic reports whether v is an intrinsic function call or a condition reference.
func intrinsic(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	for k := range m {
		return k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::")
	}
	return false
}

// validate checks value v against node n: every property known, required ones present,
// JSON types, enums; intrinsics stand for any value.
func (s *cfnSchema) validate(path string, n *schemaNode, v any, errs *[]string) {
	if intrinsic(v) || n == nil {
		return
	}
	if n.Ref != "" {
		d := s.Definitions[strings.TrimPrefix(n.Ref, "#/definitions/")]
		if d == nil {
			*errs = append(*errs, fmt.Sprintf("%s: schema has no %s", path, n.Ref))
			return
		}
		s.validate(path, d, v, errs)
		return
	}
	if len(n.AnyOf) > 0 {
		for _, alt := range n.AnyOf {
			var e []string
			s.validate(path, alt, v, &e)
			if len(e) == 0 {
				return
			}
		}
		*errs = append(*errs, fmt.Sprintf("%s: matches none of the allowed forms", path))
		return
	}
	typ, _ := n.Type.(string)
	switch val := v.(type) {
	case map[string]any:
		if typ != "" && typ != "object" {
			*errs = append(*errs, fmt.Sprintf("%s: an object where the specification wants %s", path, typ))
			return
		}
		for _, r := range n.Required {
			if _, ok := val[r]; !ok {
				*errs = append(*errs, fmt.Sprintf("%s: required property %s missing", path, r))
			}
		}
		for k, x := range val {
			p := n.Properties[k]
			if p == nil {
				for _, pp := range n.PatternProperties {
					p = pp // patterns in this schema are catch-alls (tags, maps)
				}
			}
			if p == nil {
				if n.AdditionalProperties == false {
					*errs = append(*errs, fmt.Sprintf("%s: unknown property %s", path, k))
				}
				continue
			}
			s.validate(path+"."+k, p, x, errs)
		}
	case []any:
		if typ != "" && typ != "array" {
			*errs = append(*errs, fmt.Sprintf("%s: a list where the specification wants %s", path, typ))
			return
		}
		for i, x := range val {
			s.validate(fmt.Sprintf("%s[%d]", path, i), n.Items, x, errs)
		}
	case string, float64, bool:
		if typ == "object" || typ == "array" {
			*errs = append(*errs, fmt.Sprintf("%s: a scalar where the specification wants %s", path, typ))
			return
		}
		if len(n.Enum) > 0 && !slices.Contains(n.Enum, v) {
			*errs = append(*errs, fmt.Sprintf("%s: %v is not one of %v", path, v, n.Enum))
		}
	}
}

// nullIntrinsics replace every intrinsic goformation knows with null.
var nullIntrinsics = func() map[string]intrinsics.IntrinsicHandler {
	m := map[string]intrinsics.IntrinsicHandler{}
	for _, k := range []string{"Ref", "Fn::Base64", "Fn::And", "Fn::Equals", "Fn::If", "Fn::Not", "Fn::Or", "Fn::FindInMap", "Fn::GetAtt", "Fn::GetAZs", "Fn::ImportValue", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::Sub", "Fn::Cidr", "Fn::Transform"} {
		m[k] = func(string, any, any) any { return nil }
	}
	return m
}()

// specErrors holds a template (as JSON) to the specification.
func specErrors(t testing.TB, tmpl []byte) []string {
	var doc struct {
		Resources map[string]map[string]any `json:"Resources"`
	}
	if err := json.Unmarshal(tmpl, &doc); err != nil {
		t.Fatal(err)
	}
	var errs []string
	// goformation decodes each resource into its generated type, refusing unknown fields.
	// Every intrinsic becomes null first: a typed field cannot hold {"Ref": ...}, and
	// goformation's own resolution gives a Number parameter's default as a number where
	// CloudFormation would give a string (an environment variable).
	if _, err := goformation.ParseJSONWithOptions(tmpl, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: nullIntrinsics}); err != nil {
		errs = append(errs, "goformation: "+err.Error())
	}
	all := cloudformation.AllResources()
	s := loadSchema(t)
	for name, r := range doc.Resources {
		typ, _ := r["Type"].(string)
		if _, ok := all[typ]; !ok {
			errs = append(errs, fmt.Sprintf("%s: resource type %q is not in the specification", name, typ))
			continue
		}
		def := s.Definitions[typ]
		if def == nil {
			errs = append(errs, fmt.Sprintf("%s: no schema for %s", name, typ))
			continue
		}
		// The resource itself (Type, Properties, Condition, DependsOn, policies) against the
		// resource's definition, which also requires Properties when a property is required.
		s.validate(name, def, r, &errs)
	}
	slices.Sort(errs)
	return errs
}

// TestCentralStackMatchesSpecification: every resource type and property of the central
// stack is in the CloudFormation resource specification and every required property is set.
func TestCentralStackMatchesSpecification(t *testing.T) {
	tmpl := templateJSON(t, centralStack)
	for _, e := range specErrors(t, tmpl) {
		t.Error(e)
	}
	// The stack creates the fleet view.
	var doc struct {
		Resources map[string]struct{ Type string } `json:"Resources"`
	}
	json.Unmarshal(tmpl, &doc)
	count := map[string]int{}
	for _, r := range doc.Resources {
		count[r.Type]++
	}
	for typ, n := range map[string]int{"AWS::Logs::QueryDefinition": 5, "AWS::CloudWatch::InsightRule": 1, "AWS::CloudWatch::Dashboard": 1, "AWS::SecurityHub::Insight": 4} {
		if count[typ] < n {
			t.Errorf("%d %s, want at least %d", count[typ], typ, n)
		}
	}
}

// TestSpecificationCheckIntrinsics: an intrinsic stands for any value, whatever the
// parameter's type (a Number parameter in a string field and in a number field).
func TestSpecificationCheckIntrinsics(t *testing.T) {
	tmpl := []byte(`{"AWSTemplateFormatVersion": "2010-09-09", "Parameters": {"N": {"Type": "Number", "Default": 10}},
		"Resources": {"G": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": {"Ref": "N"}, "LogGroupName": {"Fn::Sub": "x-${N}"}}},
		"F": {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": ["R", "Arn"]}, "Code": {"S3Bucket": "b", "S3Key": "k"}, "Environment": {"Variables": {"X": {"Ref": "N"}}}}}}}`)
	if errs := specErrors(t, tmpl); len(errs) > 0 {
		t.Errorf("%q", errs)
	}
}

// TestSpecificationCheckCatches: the check is not vacuous: a misspelt property, a missing
// required one, an unknown resource type, a wrong nested shape and a bad enum are caught.
func TestSpecificationCheckCatches(t *testing.T) {
	for name, tc := range map[string]struct{ resource, want string }{
		"unknown property":  {`{"Type": "AWS::Logs::QueryDefinition", "Properties": {"Name": "q", "QueryString": "fields x", "LogGroupName": "g"}}`, "LogGroupName"},
		"required missing":  {`{"Type": "AWS::CloudWatch::InsightRule", "Properties": {"RuleName": "r", "RuleState": "ENABLED"}}`, "RuleBody"},
		"unknown type":      {`{"Type": "AWS::CloudWatch::Dashbord", "Properties": {"DashboardBody": "{}"}}`, "not in the specification"},
		"nested unknown":    {`{"Type": "AWS::SecurityHub::Insight", "Properties": {"Name": "n", "GroupByAttribute": "ResourceId", "Filters": {"GeneratorID": [{"Comparison": "PREFIX", "Value": "x"}]}}}`, "GeneratorID"},
		"nested required":   {`{"Type": "AWS::SecurityHub::Insight", "Properties": {"Name": "n", "GroupByAttribute": "ResourceId", "Filters": {"GeneratorId": [{"Value": "x"}]}}}`, "Comparison"},
		"no properties":     {`{"Type": "AWS::Logs::QueryDefinition"}`, "Properties"},
		"deletion policy":   {`{"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Keep", "Properties": {}}`, "Keep"},
		"object for string": {`{"Type": "AWS::Logs::QueryDefinition", "Properties": {"Name": {"a": 1}, "QueryString": "q"}}`, "Name"},
	} {
		tmpl := []byte(`{"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"R": ` + tc.resource + `}}`)
		errs := specErrors(t, tmpl)
		if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
			t.Errorf("%s: errors %q, want one about %s", name, errs, tc.want)
		}
	}
}
