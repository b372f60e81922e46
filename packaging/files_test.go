package packaging

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ec2sec/ec2sec/agent"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// strictYAML decodes path into v, refusing unknown keys and a second document.
func strictYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var extra any
	if err := dec.Decode(&extra); err == nil {
		t.Fatalf("%s: more than one YAML document", path)
	}
}

// strictJSON decodes path into v, refusing unknown fields and trailing data.
func strictJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if dec.More() {
		t.Fatalf("%s: trailing data after the JSON value", path)
	}
}

// strs is an IAM string-or-list.
type strs []string

func (s *strs) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = strs{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

type iamPolicy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    strs
		Resource  strs
		Condition map[string]map[string]strs
	}
}

// ec2Describes are the read-only calls of the instance-view checks (docs/checks.md, ec2api probe).
var ec2Describes = []string{
	"ec2:DescribeFlowLogs", "ec2:DescribeImages", "ec2:DescribeInstances", "ec2:DescribeSecurityGroups",
	"ec2:DescribeVolumes", "ec2:GetEbsEncryptionByDefault", "ec2:GetSerialConsoleAccessStatus",
}

func sorted(s []string) []string { s = slices.Clone(s); sort.Strings(s); return s }

func TestIAMPolicy(t *testing.T) {
	var p iamPolicy
	strictJSON(t, "iam/instance-role-policy.json", &p)
	if p.Version != "2012-10-17" {
		t.Errorf("Version %q", p.Version)
	}
	group := agent.DefaultConfig().CloudWatchLogs.LogGroup
	bySid := map[string]int{}
	for i, s := range p.Statement {
		if s.Sid == "" || bySid[s.Sid] != 0 {
			t.Errorf("statement %d: missing or repeated Sid %q", i, s.Sid)
		}
		bySid[s.Sid] = i + 1
		if s.Effect != "Allow" {
			t.Errorf("%s: Effect %q", s.Sid, s.Effect)
		}
		for _, a := range s.Action {
			if strings.Contains(a, "*") {
				t.Errorf("%s: wildcard action %q", s.Sid, a)
			}
		}
		if len(s.Resource) == 0 {
			t.Errorf("%s: no Resource", s.Sid)
		}
	}
	get := func(sid string) (strs, strs) {
		i := bySid[sid]
		if i == 0 {
			t.Fatalf("no statement %s", sid)
		}
		return p.Statement[i-1].Action, p.Statement[i-1].Resource
	}
	act, res := get("WriteFindingsToTheLogGroup")
	if !reflect.DeepEqual(sorted(act), []string{"logs:CreateLogStream", "logs:PutLogEvents"}) {
		t.Errorf("logs actions %v", act)
	}
	for _, r := range res {
		if !strings.Contains(r, ":log-group:"+group) {
			t.Errorf("logs resource %q is not the log group %s", r, group)
		}
	}
	act, res = get("ImportFindingsThroughTheAccountDefaultProduct")
	if !reflect.DeepEqual([]string(act), []string{"securityhub:BatchImportFindings"}) {
		t.Errorf("securityhub actions %v", act)
	}
	if len(res) != 1 || !regexp.MustCompile(`^arn:aws:securityhub:\*:\$\{aws:PrincipalAccount\}:product/\$\{aws:PrincipalAccount\}/default$`).MatchString(res[0]) {
		t.Errorf("securityhub resource %v is not the account's default product", res)
	}
	if len(p.Statement) != 2 {
		t.Errorf("%d statements, want 2 (logs, securityhub)", len(p.Statement))
	}
	// Describe* cannot be scoped below the account: it is never part of the base policy.
	for _, st := range p.Statement {
		for _, a := range st.Action {
			if strings.HasPrefix(a, "ec2:") {
				t.Errorf("%s: base policy grants %s; EC2 reads belong in iam/ec2-describe-policy.json (opt-in)", st.Sid, a)
			}
		}
	}
}

// TestEC2DescribePolicy: the opt-in policy of the instance-view checks is a document of its
// own, holding the read-only EC2 calls and nothing else.
func TestEC2DescribePolicy(t *testing.T) {
	var p iamPolicy
	strictJSON(t, "iam/ec2-describe-policy.json", &p)
	if p.Version != "2012-10-17" || len(p.Statement) != 1 {
		t.Fatalf("Version %q, %d statements; want 2012-10-17 and one", p.Version, len(p.Statement))
	}
	s := p.Statement[0]
	if s.Sid != "ReadOnlyEc2ForInstanceViewChecks" || s.Effect != "Allow" {
		t.Errorf("statement %s %s", s.Sid, s.Effect)
	}
	if !reflect.DeepEqual(sorted(s.Action), ec2Describes) {
		t.Errorf("ec2 actions %v, want %v", sorted(s.Action), ec2Describes)
	}
}

// cfnTemplate is the top level of a CloudFormation template; unknown sections are errors.
type cfnTemplate struct {
	AWSTemplateFormatVersion string `yaml:"AWSTemplateFormatVersion"`
	Description              string `yaml:"Description"`
	Parameters               map[string]struct {
		Type          string `yaml:"Type"`
		Default       any    `yaml:"Default"`
		AllowedValues []any  `yaml:"AllowedValues"`
		Description   string `yaml:"Description"`
	} `yaml:"Parameters"`
	Conditions map[string]any `yaml:"Conditions"`
	Resources  map[string]struct {
		Type                string         `yaml:"Type"`
		Condition           string         `yaml:"Condition"`
		DeletionPolicy      string         `yaml:"DeletionPolicy"`
		UpdateReplacePolicy string         `yaml:"UpdateReplacePolicy"`
		DependsOn           any            `yaml:"DependsOn"`
		Properties          map[string]any `yaml:"Properties"`
	} `yaml:"Resources"`
	Outputs map[string]struct {
		Description string `yaml:"Description"`
		Condition   string `yaml:"Condition"`
		Value       any    `yaml:"Value"`
	} `yaml:"Outputs"`
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

func TestCloudFormationTemplate(t *testing.T) {
	var c cfnTemplate
	strictYAML(t, "cloudformation/ec2sec-central.yaml", &c)
	if c.AWSTemplateFormatVersion != "2010-09-09" || c.Description == "" {
		t.Errorf("header: %q %q", c.AWSTemplateFormatVersion, c.Description)
	}
	known := func(name string) bool {
		if strings.HasPrefix(name, "AWS::") {
			return true
		}
		_, p := c.Parameters[name]
		_, r := c.Resources[name]
		return p || r
	}
	// Every Ref, GetAtt, Sub variable and condition must name something that exists.
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				switch k {
				case "Ref":
					if s, _ := x.(string); !known(s) {
						t.Errorf("%s: Ref to unknown %q", path, x)
					}
				case "Fn::GetAtt":
					if l, _ := x.([]any); len(l) != 2 || c.Resources[l[0].(string)].Type == "" {
						t.Errorf("%s: GetAtt %v", path, x)
					}
				case "Fn::Sub":
					s, _ := x.(string)
					for _, m := range subVar.FindAllStringSubmatch(s, -1) {
						if !known(strings.SplitN(m[1], ".", 2)[0]) {
							t.Errorf("%s: Sub of unknown ${%s}", path, m[1])
						}
					}
				case "Fn::If":
					if l, _ := x.([]any); len(l) != 3 || c.Conditions[l[0].(string)] == nil {
						t.Errorf("%s: Fn::If with unknown condition %v", path, x)
					}
				}
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(path+"["+string(rune('0'+i%10))+"]", x)
			}
		}
	}
	types := map[string]string{}
	for name, r := range c.Resources {
		if r.Type == "" {
			t.Errorf("resource %s has no Type", name)
		}
		if r.Condition != "" && c.Conditions[r.Condition] == nil {
			t.Errorf("resource %s: unknown condition %s", name, r.Condition)
		}
		types[r.Type] = name
		walk(name, r.Properties)
	}
	for name, o := range c.Outputs {
		if o.Value == nil {
			t.Errorf("output %s has no Value", name)
		}
		walk("Outputs."+name, o.Value)
	}
	for _, want := range []string{"AWS::Logs::LogGroup", "AWS::KMS::Key", "AWS::SSM::Association", "AWS::IAM::ManagedPolicy"} {
		if types[want] == "" {
			t.Errorf("no %s resource", want)
		}
	}
	// The findings log group by name: the stack has others (the forwarder's own logs).
	lg := c.Resources["FindingsLogGroup"].Properties
	for _, k := range []string{"LogGroupName", "RetentionInDays", "KmsKeyId"} {
		if lg[k] == nil {
			t.Errorf("log group lacks %s", k)
		}
	}
	if d := c.Parameters["LogGroupName"].Default; d != agent.DefaultConfig().CloudWatchLogs.LogGroup {
		t.Errorf("LogGroupName default %v differs from the agent's default log group", d)
	}
	as := c.Resources[types["AWS::SSM::Association"]].Properties
	if as["Name"] != "AWS-ConfigureAWSPackage" {
		t.Errorf("association document %v", as["Name"])
	}
	for _, k := range []string{"Targets", "MaxConcurrency", "MaxErrors", "ScheduleExpression", "Parameters"} {
		if as[k] == nil {
			t.Errorf("association lacks %s", k)
		}
	}
	if b, _ := json.Marshal(as["Targets"]); !strings.Contains(string(b), "tag:${TargetTagKey}") {
		t.Errorf("association does not target by tag: %s", b)
	}
	if len(c.Outputs) < 3 {
		t.Errorf("only %d outputs", len(c.Outputs))
	}
	// Each managed policy grants what its shipped JSON policy grants, statement by statement;
	// the EC2 one exists only when asked for (AllowEc2Describe, default false).
	if d := c.Parameters["AllowEc2Describe"].Default; d != "false" {
		t.Errorf("AllowEc2Describe defaults to %v; the EC2 Describe policy is opt-in", d)
	}
	for name, file := range map[string]string{"InstancePolicy": "iam/instance-role-policy.json", "Ec2DescribePolicy": "iam/ec2-describe-policy.json"} {
		r, ok := c.Resources[name]
		if !ok || r.Type != "AWS::IAM::ManagedPolicy" {
			t.Errorf("no managed policy %s", name)
			continue
		}
		if cond := map[string]string{"Ec2DescribePolicy": "WithEc2Describe"}[name]; r.Condition != cond {
			t.Errorf("%s: Condition %q, want %q", name, r.Condition, cond)
		}
		if got, want := cfnStatements(r.Properties["PolicyDocument"]), fileStatements(t, file); !reflect.DeepEqual(got, want) {
			t.Errorf("%s statements %v differ from %s %v", name, got, file, want)
		}
	}
}

// fileStatements maps a shipped policy's Sids to their sorted actions.
func fileStatements(t *testing.T, file string) map[string][]string {
	var p iamPolicy
	strictJSON(t, file, &p)
	want := map[string][]string{}
	for _, s := range p.Statement {
		want[s.Sid] = sorted(s.Action)
	}
	return want
}

// cfnStatements maps a template policy document's Sids to their sorted actions.
func cfnStatements(policy any) map[string][]string {
	b, _ := json.Marshal(policy)
	got := map[string][]string{}
	var collect func(v any)
	collect = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if sid, ok := v["Sid"].(string); ok {
				var a strs
				ab, _ := json.Marshal(v["Action"])
				json.Unmarshal(ab, &a)
				got[sid] = sorted(a)
				return
			}
			for _, x := range v {
				collect(x)
			}
		case []any:
			for _, x := range v {
				collect(x)
			}
		}
	}
	var doc any
	json.Unmarshal(b, &doc)
	collect(doc)
	return got
}

type awstoe struct {
	Name          string `yaml:"name"`
	Description   string `yaml:"description"`
	SchemaVersion string `yaml:"schemaVersion"`
	Parameters    []map[string]struct {
		Type        string `yaml:"type"`
		Default     string `yaml:"default"`
		Description string `yaml:"description"`
	} `yaml:"parameters"`
	Phases []struct {
		Name  string `yaml:"name"`
		Steps []struct {
			Name      string `yaml:"name"`
			Action    string `yaml:"action"`
			OnFailure string `yaml:"onFailure"`
			Inputs    any    `yaml:"inputs"`
		} `yaml:"steps"`
	} `yaml:"phases"`
}

func TestImageBuilderComponent(t *testing.T) {
	var c awstoe
	strictYAML(t, "imagebuilder/ec2sec-component.yaml", &c)
	if c.Name == "" || c.Description == "" || c.SchemaVersion != "1.0" {
		t.Errorf("header: name %q, schemaVersion %q", c.Name, c.SchemaVersion)
	}
	params := map[string]bool{}
	for _, p := range c.Parameters {
		for name, v := range p {
			if v.Type != "string" {
				t.Errorf("parameter %s: type %q", name, v.Type)
			}
			params[name] = true
		}
	}
	phases := map[string]string{}
	actions := map[string]bool{"ExecuteBash": true, "S3Download": true}
	for _, ph := range c.Phases {
		var text strings.Builder
		for _, s := range ph.Steps {
			if s.Name == "" || !actions[s.Action] {
				t.Errorf("phase %s: step %q with action %q", ph.Name, s.Name, s.Action)
			}
			b, _ := json.Marshal(s.Inputs)
			text.Write(b)
		}
		phases[ph.Name] = text.String()
	}
	must := map[string][]string{
		"build":    {"install.sh", "ec2sec-linux-{{ Arch }}.zip"},
		"validate": {"systemctl is-active ec2sec.service", "systemctl is-enabled ec2sec-imdswatch.service", "ec2sec version"},
		"test":     {"ec2sec scan --fail-on high"},
	}
	for ph, wants := range must {
		for _, w := range wants {
			if !strings.Contains(phases[ph], w) {
				t.Errorf("phase %s lacks %q", ph, w)
			}
		}
	}
	all, _ := os.ReadFile("imagebuilder/ec2sec-component.yaml")
	for _, m := range regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`).FindAllStringSubmatch(string(all), -1) {
		if !params[m[1]] {
			t.Errorf("{{ %s }} is not a declared parameter", m[1])
		}
	}
}

// TestShippedConfig: the packaged /etc/ec2sec/config.yaml loads, and its commented example,
// uncommented, is a valid config equal to the defaults (so its documentation is true).
func TestShippedConfig(t *testing.T) {
	cfg, err := agent.LoadConfig("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, agent.DefaultConfig()) {
		t.Errorf("shipped config changes defaults: %+v", cfg)
	}
	b, _ := os.ReadFile("config.yaml")
	var ex strings.Builder
	started := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "# region:") {
			started = true
		}
		if started && strings.HasPrefix(l, "# ") {
			ex.WriteString(strings.TrimPrefix(l, "# ") + "\n")
		}
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte(ex.String()), 0o644)
	got, err := agent.LoadConfig(p)
	if err != nil {
		t.Fatalf("uncommented example: %v\n%s", err, ex.String())
	}
	want := agent.DefaultConfig()
	if len(got.Probes.Disable) == 0 {
		got.Probes.Disable = nil // "disable: []" and no key mean the same
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("uncommented example %+v differs from the defaults %+v", got, want)
	}
}

func TestNfpmConfig(t *testing.T) {
	var c struct {
		Contents []struct {
			Src  string `yaml:"src"`
			Dst  string `yaml:"dst"`
			Type string `yaml:"type"`
		} `yaml:"contents"`
		Scripts map[string]string `yaml:"scripts"`
	}
	b, err := os.ReadFile("nfpm/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	dsts := map[string]string{}
	for _, f := range c.Contents {
		dsts[f.Dst] = f.Type
		if f.Src != "" && !strings.Contains(f.Src, "$") {
			if _, err := os.Stat(filepath.Join(testenv.RepoRoot(), f.Src)); err != nil {
				t.Errorf("content source %s: %v", f.Src, err)
			}
		}
	}
	if dsts["/etc/ec2sec/config.yaml"] != "config|noreplace" {
		t.Errorf("config.yaml type %q, want config|noreplace", dsts["/etc/ec2sec/config.yaml"])
	}
	for _, d := range []string{"/usr/bin/ec2sec", "/usr/lib/systemd/system/ec2sec.service", "/usr/lib/systemd/system/ec2sec-imdswatch.service"} {
		if _, ok := dsts[d]; !ok {
			t.Errorf("package lacks %s", d)
		}
	}
	for _, k := range []string{"postinstall", "preremove"} {
		if _, err := os.Stat(filepath.Join(testenv.RepoRoot(), c.Scripts[k])); err != nil {
			t.Errorf("script %s: %v", k, err)
		}
	}
}

// TestScriptsAreDashClean parses every shell script the packages run with dash, the sh of
// Debian and Ubuntu, which has none of bash's extensions.
func TestScriptsAreDashClean(t *testing.T) {
	dash := testenv.Tool(t, "dash")
	for _, s := range []string{"ssm/install.sh", "ssm/uninstall.sh", "nfpm/postinstall.sh", "nfpm/preremove.sh", "nfpm/postremove.sh"} {
		if out, err := exec.Command(dash, "-n", s).CombinedOutput(); err != nil {
			t.Errorf("dash -n %s: %v\n%s", s, err, out)
		}
		b, _ := os.ReadFile(s)
		for _, bashism := range []string{"[[", "function ", "local -", "$'", "<<<", "pipefail", "source "} {
			if strings.Contains(string(b), bashism) {
				t.Errorf("%s uses %q, which dash lacks", s, bashism)
			}
		}
	}
}

func TestPlatformKey(t *testing.T) {
	for id, want := range map[string]string{"amzn": "amazon", "rhel": "redhat", "ol": "oracle", "sles": "suse", "ubuntu": "ubuntu", "debian": "debian", "centos": "centos", "rocky": "rocky"} {
		if got := PlatformKey(id); got != want {
			t.Errorf("PlatformKey(%q) = %q, want %q", id, got, want)
		}
		if !slices.Contains(LinuxPlatforms, PlatformKey(id)) {
			t.Errorf("os-release ID %q maps to %q, which the manifest does not list", id, PlatformKey(id))
		}
	}
}

func TestSSMVersion(t *testing.T) {
	for in, want := range map[string]string{"1.2.3": "1.2.3", "0.0.0+g0123abc": "0.0.0-g0123abc", "1.0~rc1": "1.0-rc1"} {
		if got := SSMVersion(in); got != want {
			t.Errorf("SSMVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteZipIsReproducible(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	os.WriteFile(a, []byte("#!/bin/sh\necho hi\n"), 0o600)
	entries := []Entry{{"install.sh", a, 0o755}}
	mtime := time.Unix(1700000000, 0)
	var one, two bytes.Buffer
	if err := WriteZip(&one, entries, mtime); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(a, time.Now(), time.Now().Add(time.Hour))
	if err := WriteZip(&two, entries, mtime); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Error("two zips of the same input differ")
	}
	zr, err := zip.NewReader(bytes.NewReader(one.Bytes()), int64(one.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if f := zr.File[0]; f.Name != "install.sh" || f.Mode().Perm() != 0o755 || !f.Modified.Equal(mtime) {
		t.Errorf("entry %s mode %v time %v", f.Name, f.Mode(), f.Modified)
	}
}
