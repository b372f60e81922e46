package packaging

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/agent"
)

// The central policy variant grants the log group only: no securityhub action at all. Its
// logs statement is the direct policy's.
func TestIAMPolicyCentral(t *testing.T) {
	b, err := os.ReadFile("iam/instance-role-policy-central.json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(string(b)), "securityhub") {
		t.Errorf("the central policy mentions Security Hub:\n%s", b)
	}
	central, direct := fileStatements(t, "iam/instance-role-policy-central.json"), fileStatements(t, "iam/instance-role-policy.json")
	if len(central) != 1 || !reflect.DeepEqual(central["WriteFindingsToTheLogGroup"], direct["WriteFindingsToTheLogGroup"]) {
		t.Errorf("central statements %v, direct %v", central, direct)
	}
}

// The stack's central mode: the forwarder (provided.al2023, arm64 by default, the bootstrap
// handler) behind a subscription filter of findings events, a dead-letter queue for batches
// that keep failing, alarms on rejections and on the queue; the forwarder's role is the only
// principal with BatchImportFindings (the instance policy's statement exists in direct mode
// only); the install writes the stack's mode into new configs; the function's environment
// names only settings the forwarder reads.
func TestCloudFormationForwarder(t *testing.T) {
	var c cfnTemplate
	strictYAML(t, "cloudformation/ec2sec-central.yaml", &c)
	if d := c.Parameters["SecurityHubMode"].Default; d != "central" {
		t.Errorf("SecurityHubMode defaults to %v, want central", d)
	}
	byType := map[string][]string{}
	for name, r := range c.Resources {
		byType[r.Type] = append(byType[r.Type], name)
	}
	fn := c.Resources["ForwarderFunction"]
	if fn.Type != "AWS::Lambda::Function" || fn.Condition != "CentralMode" {
		t.Fatalf("no central-mode forwarder function: %+v", fn)
	}
	if fn.Properties["Runtime"] != "provided.al2023" || fn.Properties["Handler"] != "bootstrap" || c.Parameters["ForwarderArchitecture"].Default != "arm64" {
		t.Errorf("function %v %v, architecture default %v", fn.Properties["Runtime"], fn.Properties["Handler"], c.Parameters["ForwarderArchitecture"].Default)
	}
	env, _ := json.Marshal(fn.Properties["Environment"])
	for _, k := range []string{"EC2SEC_HUB_ACCOUNT", "EC2SEC_ALLOWED_ACCOUNTS", "EC2SEC_IMPORT_RPS"} {
		if !strings.Contains(string(env), k) {
			t.Errorf("function environment lacks %s", k)
		}
	}
	src, _ := os.ReadFile("../forwarder/env.go")
	var vars map[string]map[string]any
	b, _ := json.Marshal(fn.Properties["Environment"])
	json.Unmarshal(b, &struct{ Variables *map[string]map[string]any }{&vars})
	for k := range vars {
		if !strings.Contains(string(src), `"`+k+`"`) {
			t.Errorf("function environment sets %s, which the forwarder does not read", k)
		}
	}
	sub := c.Resources["FindingsSubscription"]
	if sub.Type != "AWS::Logs::SubscriptionFilter" || !strings.Contains(sub.Properties["FilterPattern"].(string), `$.type = "findings"`) {
		t.Errorf("subscription %+v", sub)
	}
	esm, _ := json.Marshal(c.Resources["ForwarderEventSource"].Properties)
	if !strings.Contains(string(esm), `"OnFailure":{"Destination":{"Fn::GetAtt":["ForwarderDeadLetterQueue","Arn"]}}`) || !strings.Contains(string(esm), `"ParallelizationFactor":1`) {
		t.Errorf("event source mapping %s: no dead-letter queue or not one forwarder at a time", esm)
	}
	if c.Resources["ForwarderDeadLetterQueue"].Type != "AWS::SQS::Queue" {
		t.Error("no dead-letter queue")
	}
	alarms := map[string]bool{}
	for _, name := range byType["AWS::CloudWatch::Alarm"] {
		a, _ := json.Marshal(c.Resources[name].Properties)
		alarms[string(a)] = true
		switch {
		case strings.Contains(string(a), `"MetricName":"EventsRejected"`) && strings.Contains(string(a), `"Namespace":"ec2sec/forwarder"`):
			alarms["rejections"] = true
		case strings.Contains(string(a), "ForwarderDeadLetterQueue"):
			alarms["queue"] = true
		}
	}
	if !alarms["rejections"] || !alarms["queue"] {
		t.Errorf("alarms on rejections %v, on the queue %v", alarms["rejections"], alarms["queue"])
	}
	// Who may import: the forwarder's role, and the instance policy only under DirectMode.
	for name, r := range c.Resources {
		if !strings.HasPrefix(r.Type, "AWS::IAM::") {
			continue
		}
		p, _ := json.Marshal(r.Properties)
		if !strings.Contains(string(p), "securityhub:BatchImportFindings") {
			continue
		}
		switch name {
		case "ForwarderRole":
		case "InstancePolicy":
			if !strings.Contains(string(p), `{"Fn::If":["DirectMode",{"Action":"securityhub:BatchImportFindings"`) {
				t.Errorf("the instance policy grants BatchImportFindings outside direct mode: %s", p)
			}
		default:
			t.Errorf("%s grants BatchImportFindings", name)
		}
	}
	as, _ := json.Marshal(c.Resources["InstallAssociation"].Properties["Parameters"])
	if !strings.Contains(string(as), `SSM_EC2SEC_HUB_MODE`) {
		t.Errorf("the install association does not pass the mode: %s", as)
	}
}

// The install script writes the mode it is given (the central stack's SSM_EC2SEC_HUB_MODE)
// into a new config, which the agent then loads as central; an existing config is kept; a
// wrong mode fails the install.
func TestInstallScriptHubMode(t *testing.T) {
	pkg := fakePackage(t)
	root := t.TempDir()
	cfg := filepath.Join(root, "etc/ec2sec/config.yaml")
	t.Setenv("SSM_EC2SEC_HUB_MODE", "central")
	if code, out := runScript(t, filepath.Join(pkg, "install.sh"), root); code != 0 {
		t.Fatalf("install.sh: exit %d\n%s", code, out)
	}
	c, err := agent.LoadConfig(cfg)
	if err != nil || !c.SecurityHub.Central() {
		t.Errorf("installed config: mode %q, %v", c.SecurityHub.Mode, err)
	}
	os.WriteFile(cfg, []byte("interval: 2h\n"), 0o644)
	if code, _ := runScript(t, filepath.Join(pkg, "install.sh"), root); code != 0 {
		t.Fatal("second install failed")
	}
	if b, _ := os.ReadFile(cfg); string(b) != "interval: 2h\n" {
		t.Errorf("re-install changed the administrator's config: %q", b)
	}
	t.Setenv("SSM_EC2SEC_HUB_MODE", "sideways")
	if code, out := runScript(t, filepath.Join(pkg, "install.sh"), t.TempDir()); code == 0 || !strings.Contains(out, "want central or direct") {
		t.Errorf("a wrong mode installed: exit %d\n%s", code, out)
	}
}
