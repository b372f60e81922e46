package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ec2sec/ec2sec/internal/safefile"
	"github.com/ec2sec/ec2sec/probes"
)

// DefaultConfigPath is read when --config is not given and the file exists:
// /etc/ec2sec/config.yaml, or %ProgramData%\ec2sec\config.yaml on Windows (where
// install.ps1 puts it).
var DefaultConfigPath = defaultPath("/etc/ec2sec/config.yaml", "config.yaml")

// defaultStateDir is /var/lib/ec2sec, or %ProgramData%\ec2sec\state on Windows.
var defaultStateDir = defaultPath("/var/lib/ec2sec", "state")

// defaultPath returns unix on every OS but Windows, where it is name under
// %ProgramData%\ec2sec.
func defaultPath(unix, name string) string {
	if runtime.GOOS != "windows" {
		return unix
	}
	pd := os.Getenv("ProgramData")
	if pd == "" {
		pd = `C:\ProgramData`
	}
	return filepath.Join(pd, "ec2sec", name)
}

// Config is the agent's YAML config file. Every key is optional; unknown keys are an error.
type Config struct {
	Region         string         `yaml:"region"`
	Interval       Duration       `yaml:"interval"`
	Splay          Duration       `yaml:"splay"`
	ProbeTimeout   Duration       `yaml:"probe_timeout"`
	Probes         ProbesConfig   `yaml:"probes"`
	CloudWatchLogs CloudWatchLogs `yaml:"cloudwatch_logs"`
	SecurityHub    SecurityHub    `yaml:"security_hub"`
	StateDir       string         `yaml:"state_dir"`
	// FingerprintKeyFile holds a fleet-wide key for secret fingerprints (see fingerprint.go).
	FingerprintKeyFile string      `yaml:"fingerprint_key_file"`
	Spool              SpoolConfig `yaml:"spool"`
}

// SpoolConfig bounds the delivery spool under state_dir.
type SpoolConfig struct {
	// MaxMB is the spool's size bound in MiB; past it the oldest log events are dropped
	// (counted and reported), findings never.
	MaxMB int `yaml:"max_mb"`
}

// ProbesConfig turns probes off by name.
type ProbesConfig struct {
	Disable []string `yaml:"disable"`
}

// CloudWatchLogs says where results are logged; an empty LogGroup turns CloudWatch Logs off.
type CloudWatchLogs struct {
	LogGroup string `yaml:"log_group"`
	RoleARN  string `yaml:"role_arn"`
}

// SecurityHub says whether findings go to Security Hub, and how.
type SecurityHub struct {
	Enabled bool `yaml:"enabled"`
	// Mode is how findings reach Security Hub: "direct" (the agent imports them itself; its
	// role needs securityhub:BatchImportFindings) or "central" (the agent sends them only as
	// CloudWatch Logs events, with its AWS-signed identity, to cloudwatch_logs.log_group; the
	// central stack's forwarder verifies and imports them, and instances need no Security
	// Hub permission). The built-in default is direct, so a small account works without the
	// central stack; the stack's install writes central (docs/forwarder.md).
	Mode string `yaml:"mode"`
}

// Security Hub delivery modes.
const (
	HubDirect  = "direct"
	HubCentral = "central"
)

// Central reports whether findings go through the central forwarder.
func (h SecurityHub) Central() bool { return h.Mode == HubCentral }

// DefaultConfig is the config with every key at its default.
func DefaultConfig() Config {
	return Config{
		Interval:       Duration{time.Hour},
		Splay:          Duration{10 * time.Minute},
		ProbeTimeout:   Duration{30 * time.Second},
		CloudWatchLogs: CloudWatchLogs{LogGroup: "/ec2sec/findings"},
		SecurityHub:    SecurityHub{Enabled: true, Mode: HubDirect},
		StateDir:       defaultStateDir,
		Spool:          SpoolConfig{MaxMB: 50},
	}
}

// Duration is a time.Duration written as "1h", "10m" in YAML.
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 1h or 10m)", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ConfigError is a config file that cannot be used; the CLI exits 2 on it.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// maxConfigSize bounds the config file; a real one is a few hundred bytes.
const maxConfigSize = 1 << 20

// LoadConfig reads the config file at path over the defaults. An empty path reads
// DefaultConfigPath when it exists, else returns the defaults. As sshd's StrictModes, the
// file must be owned by root or the agent's user and not group- or world-writable, and is
// opened without following a symlink or waiting on a FIFO (safefile.Admin): whoever can
// write it can turn probes off or redirect reports.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	explicit := path != ""
	if !explicit {
		path = DefaultConfigPath
	}
	// Looked at before it is opened: a device could do anything on open, which no config
	// file is (a FIFO is opened non-blocking, then refused).
	if fi, err := os.Stat(path); err == nil && fi.Mode()&fs.ModeDevice != 0 {
		return cfg, &ConfigError{fmt.Errorf("config %s: not a regular file", path)}
	}
	f, _, err := safefile.Open(path, os.O_RDONLY, 0, safefile.Admin)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return cfg, nil
		}
		return cfg, &ConfigError{fmt.Errorf("config: %w", err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return cfg, &ConfigError{fmt.Errorf("config %s: %w", path, err)}
	}
	if len(b) > maxConfigSize {
		return cfg, &ConfigError{fmt.Errorf("config %s: larger than %d bytes", path, maxConfigSize)}
	}
	if err := parseConfig(b, &cfg); err != nil {
		return cfg, &ConfigError{fmt.Errorf("config %s: %w", path, err)}
	}
	return cfg, nil
}

func parseConfig(b []byte, cfg *Config) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return cfg.validate() // empty file: all defaults
	}
	if err := checkKeys(doc.Content[0], reflect.TypeOf(*cfg), ""); err != nil {
		return err
	}
	if err := doc.Content[0].Decode(cfg); err != nil {
		return err
	}
	return cfg.validate()
}

// checkKeys rejects any mapping key that no field of t (by yaml tag) takes, naming its full
// dotted path and line, so a typo never silently turns a setting off.
func checkKeys(n *yaml.Node, t reflect.Type, prefix string) error {
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct || t == reflect.TypeOf(Duration{}) {
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			fields[tag] = t.Field(i).Type
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ft, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown key %q", k.Line, prefix+k.Value)
		}
		if err := checkKeys(n.Content[i+1], ft, prefix+k.Value+"."); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validate() error {
	for _, name := range c.Probes.Disable {
		if _, err := probes.Select(probes.All(), []string{name}); err != nil {
			return fmt.Errorf("probes.disable: %w", err)
		}
	}
	switch {
	case c.Interval.Duration < time.Minute:
		return fmt.Errorf("interval %s: must be at least 1m", c.Interval)
	case c.Splay.Duration < 0:
		return fmt.Errorf("splay %s: must not be negative", c.Splay)
	case c.ProbeTimeout.Duration <= 0:
		return fmt.Errorf("probe_timeout %s: must be positive", c.ProbeTimeout)
	case c.StateDir == "":
		return errors.New("state_dir: must not be empty")
	case c.Spool.MaxMB < 1 || c.Spool.MaxMB > 10240:
		return fmt.Errorf("spool.max_mb %d: must be between 1 and 10240", c.Spool.MaxMB)
	case c.CloudWatchLogs.RoleARN != "" && !strings.HasPrefix(c.CloudWatchLogs.RoleARN, "arn:"):
		return fmt.Errorf("cloudwatch_logs.role_arn %q: not an ARN", c.CloudWatchLogs.RoleARN)
	case c.SecurityHub.Mode != HubDirect && c.SecurityHub.Mode != HubCentral:
		return fmt.Errorf("security_hub.mode %q: must be direct or central", c.SecurityHub.Mode)
	case c.SecurityHub.Central() && c.SecurityHub.Enabled && c.CloudWatchLogs.LogGroup == "":
		return errors.New("security_hub.mode central: findings travel through CloudWatch Logs, so cloudwatch_logs.log_group must not be empty")
	}
	return nil
}
