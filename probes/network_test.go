package probes

import (
	"context"
	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"testing"

	"github.com/ec2sec/ec2sec/probes/metadata"
)

func TestPublicIPv4(t *testing.T) {
	cases := []struct {
		name     string
		metaData map[string]string
		status   Status
		ip       string
	}{
		{"public address", map[string]string{"public-ipv4": "203.0.113.7", "local-ipv4": "10.0.1.5"}, Failed, "203.0.113.7"},
		{"private only (404)", map[string]string{"local-ipv4": "10.0.1.5"}, Passed, ""},
		{"garbage answer", map[string]string{"public-ipv4": "<html>"}, NotAvailable, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			imds := fakeimds.New(t)
			imds.Set(func(s *fakeimds.Server) { s.Paths = metaData(c.metaData) })
			env := testEnv(t)
			env.IMDS = metadata.New(metadata.Options{Endpoint: imds.URL, Getenv: env.Getenv})
			env.Identity = metadata.Identity{Reachable: true, InstanceID: "i-0123456789abcdef0", Region: "eu-west-1"}
			rs, err := NetworkProbe{}.Run(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			r := one(t, rs, "public-ipv4")
			if r.Status != c.status {
				t.Fatalf("status %s (%s), want %s", r.Status, r.Reason, c.status)
			}
			if c.ip != "" && r.Evidence["public_ipv4"] != c.ip {
				t.Errorf("evidence %v", r.Evidence)
			}
		})
	}
}

func TestPublicIPv4OffEC2(t *testing.T) {
	env := testEnv(t)
	env.Identity = metadata.Identity{Reason: "not on EC2: IMDS did not answer"}
	if _, err := (NetworkProbe{}).Run(context.Background(), env); err == nil || err.Error() != env.Identity.Reason {
		t.Errorf("off EC2 the probe must say why it cannot look; got %v", err)
	}
}

// metaData is fakeimds paths answering only the given meta-data/ entries (others are 404).
func metaData(entries map[string]string) map[string]string {
	paths := map[string]string{}
	for k, v := range entries {
		paths["meta-data/"+k] = v
	}
	return paths
}
