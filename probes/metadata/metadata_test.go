package metadata

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestPartitions(t *testing.T) {
	for region, want := range map[string][2]string{
		"us-east-1":      {"aws", "amazonaws.com"},
		"cn-north-1":     {"aws-cn", "amazonaws.com.cn"},
		"us-gov-west-1":  {"aws-us-gov", "amazonaws.com"},
		"eu-central-2":   {"aws", "amazonaws.com"},
		"us-iso-east-1":  {"aws-iso", "c2s.ic.gov"},
		"us-isob-east-1": {"aws-iso-b", "sc2s.sgov.gov"},
		"eusc-de-east-1": {"aws-eusc", "amazonaws.eu"},
	} {
		p := PartitionOf(region)
		if p != want[0] || DomainOf(p) != want[1] {
			t.Errorf("%s: %s %s, want %v", region, p, DomainOf(p), want)
		}
	}
}

// TestKnownDomainsAndRegions: only the partitions' own DNS suffixes and region-shaped names
// are taken from IMDS to name an endpoint.
func TestKnownDomainsAndRegions(t *testing.T) {
	for _, d := range []string{"amazonaws.com", "amazonaws.com.cn", "amazonaws.eu", "c2s.ic.gov", "sc2s.sgov.gov", "cloud.adc-e.uk", "csp.hci.ic.gov"} {
		if !KnownDomain(d) {
			t.Errorf("%s is an AWS partition's DNS suffix", d)
		}
	}
	for _, d := range []string{"", "attacker.example", "amazonaws.com.", "AMAZONAWS.COM", "amazonaws.com.attacker.example", "x.amazonaws.com", "amazonaws.com\x00"} {
		if KnownDomain(d) {
			t.Errorf("%q is no AWS partition's DNS suffix", d)
		}
	}
	for _, r := range []string{"us-east-1", "us-gov-west-1", "cn-northwest-1", "us-isob-east-1", "eu-isoe-west-1", "us-isof-south-1", "eusc-de-east-1", "ap-southeast-5"} {
		if !ValidRegion(r) {
			t.Errorf("%s is a region name", r)
		}
	}
	for _, r := range []string{"", "us-east-1.attacker.example", "us-east-1\n", "US-EAST-1", "us", "x-1", "../1", "us-east-1/x"} {
		if ValidRegion(r) {
			t.Errorf("%q is no region name", r)
		}
	}
}

func TestStatusCodeFromSDKMessage(t *testing.T) {
	err := fmt.Errorf("IMDS x: %w", errors.New("operation error ec2imds: getToken, http response error StatusCode: 403, request to EC2 IMDS failed"))
	if got := StatusCode(err); got != 403 {
		t.Errorf("StatusCode %d, want 403", got)
	}
	if got := StatusCode(errors.New("dial tcp: connection refused")); got != 0 {
		t.Errorf("StatusCode %d for a network error", got)
	}
}

func TestIdentityAndNotFound(t *testing.T) {
	s := fakeimds.New(t)
	c := New(Options{Endpoint: s.URL})
	id := c.Identity(context.Background())
	if id.InstanceARN() != "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0" || id.Domain != "amazonaws.com" || id.Reason != "" {
		t.Errorf("identity %+v", id)
	}
	if _, err := c.Get(context.Background(), "public-ipv4"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing item: %v, want ErrNotFound", err)
	}
	if _, err := c.UserData(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Errorf("no user data: %v, want ErrNotFound", err)
	}
	for _, r := range s.Requested() {
		if r == "GET /latest/meta-data/" {
			t.Errorf("the client made a token-less request")
		}
	}
}

func TestIdentityWithoutPartitionDerivesIt(t *testing.T) {
	s := fakeimds.New(t)
	s.Paths["dynamic/instance-identity/document"] = `{"accountId":"111122223333","instanceId":"i-0abc","region":"cn-northwest-1","imageId":"ami-1"}`
	delete(s.Paths, "meta-data/services/partition")
	delete(s.Paths, "meta-data/services/domain")
	id := New(Options{Endpoint: s.URL}).Identity(context.Background())
	if id.Partition != "aws-cn" || id.Domain != "amazonaws.com.cn" || id.Reason == "" {
		t.Errorf("identity %+v", id)
	}
	if id.InstanceARN() != "arn:aws-cn:ec2:cn-northwest-1:111122223333:instance/i-0abc" {
		t.Errorf("ARN %s", id.InstanceARN())
	}
}

func TestDisabled(t *testing.T) {
	s := fakeimds.New(t)
	c := New(Options{Endpoint: s.URL, Getenv: func(k string) string {
		if k == "AWS_EC2_METADATA_DISABLED" {
			return "TRUE"
		}
		return ""
	}})
	if id := c.Identity(context.Background()); id.Reachable || id.Reason == "" {
		t.Errorf("disabled identity %+v", id)
	}
	if len(s.Requested()) != 0 {
		t.Errorf("requests while disabled: %v", s.Requested())
	}
}
