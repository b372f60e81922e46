package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	return p
}

func TestConfigContractExample(t *testing.T) {
	p := writeConfig(t, `
region: ""
interval: 1h
splay: 10m
probes: {disable: [imds]}
cloudwatch_logs:
  log_group: /ec2sec/findings
  role_arn: ""
security_hub:
  enabled: false
state_dir: /var/lib/ec2sec
`, 0o600)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Interval.Duration != time.Hour || c.Splay.Duration != 10*time.Minute || c.SecurityHub.Enabled || c.Probes.Disable[0] != "imds" {
		t.Errorf("parsed %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"colour: blue\n", `unknown key "colour"`},
		{"cloudwatch_logs:\n  group: x\n", `line 2: unknown key "cloudwatch_logs.group"`},
		{"interval: soon\n", "not a duration"},
		{"interval: 1s\n", "at least 1m"},
		{"probes: {disable: [nosuch]}\n", `unknown probe "nosuch"`},
		{"region: [\n", "yaml"},
	} {
		_, err := LoadConfig(writeConfig(t, tc.body, 0o600))
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want a ConfigError containing %q", tc.body, err, tc.want)
		}
	}
}

func TestConfigWorldWritableRefused(t *testing.T) {
	_, err := LoadConfig(writeConfig(t, "region: us-east-1\n", 0o666))
	if err == nil || !strings.Contains(err.Error(), "world-writable") {
		t.Errorf("err %v", err)
	}
}

func TestConfigMissing(t *testing.T) {
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml")); err == nil {
		t.Error("an explicit missing config file is not an error")
	}
}

func TestStateDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	os.MkdirAll(dir, 0o755)
	if err := privateDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want 0700", fi.Mode().Perm())
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(dir, link)
	if err := privateDir(link); err == nil {
		t.Error("a symlinked state dir was accepted")
	}
}

// security_hub.mode: direct by default (a small account works without the central stack),
// central on request; central needs the log group its findings travel through.
func TestConfigHubMode(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, "security_hub:\n  enabled: true\n", 0o600))
	if err != nil || c.SecurityHub.Mode != HubDirect || c.SecurityHub.Central() {
		t.Errorf("default mode %q (err %v), want direct", c.SecurityHub.Mode, err)
	}
	c, err = LoadConfig(writeConfig(t, "security_hub:\n  mode: central\n", 0o600))
	if err != nil || !c.SecurityHub.Central() || !c.SecurityHub.Enabled {
		t.Errorf("mode central: %+v, %v", c.SecurityHub, err)
	}
	for _, tc := range []struct{ body, want string }{
		{"security_hub:\n  mode: forwarder\n", `security_hub.mode "forwarder": must be direct or central`},
		{"security_hub:\n  mode: central\ncloudwatch_logs:\n  log_group: \"\"\n", "cloudwatch_logs.log_group must not be empty"},
		{"security_hub:\n  modes: central\n", `unknown key "security_hub.modes"`},
	} {
		_, err := LoadConfig(writeConfig(t, tc.body, 0o600))
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want a ConfigError containing %q", tc.body, err, tc.want)
		}
	}
	// Findings off: no log group needed whatever the mode.
	if _, err := LoadConfig(writeConfig(t, "security_hub:\n  enabled: false\n  mode: central\ncloudwatch_logs:\n  log_group: \"\"\n", 0o600)); err != nil {
		t.Error(err)
	}
}
