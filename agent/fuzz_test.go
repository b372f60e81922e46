package agent

import (
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParseConfig: any config file text either is refused with an error or yields a config
// that passes validation, and that config written back as YAML parses to itself.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"", "region: eu-west-1\n", "interval: 30m\nsplay: 5m\nprobe_timeout: 10s\n",
		"probes:\n  disable: [ssm, console]\n", "cloudwatch_logs:\n  log_group: /x\n  role_arn: arn:aws:iam::1:role/r\nsecurity_hub:\n  enabled: false\n",
		"state_dir: /var/lib/ec2sec\nfingerprint_key_file: /etc/ec2sec/key\n",
		"interval: 1s\n", "intervall: 1h\n", "probes:\n  disable: [nope]\n", "&a [*a, *a]\n", "a: &a [*a]\n",
		"{interval: 1h, region: !!binary aGk=}\n", "---\n---\n", "\xff\x00: 1\n", "splay: -1m\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg := DefaultConfig()
		if err := parseConfig(b, &cfg); err != nil {
			return
		}
		if err := cfg.validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v", err)
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal %+v: %v", cfg, err)
		}
		again := DefaultConfig()
		if err := parseConfig(out, &again); err != nil {
			t.Fatalf("%+v written as\n%s\ndoes not parse: %v", cfg, out, err)
		}
		if !reflect.DeepEqual(normalize(cfg), normalize(again)) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, again)
		}
	})
}

// normalize makes an empty list and a missing one the same.
func normalize(c Config) Config {
	if len(c.Probes.Disable) == 0 {
		c.Probes.Disable = nil
	}
	return c
}
