package probes

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// apiOptions is imds-metadata-options as the ec2api probe reports it for these API values,
// with the severity the scan's catalog fill gives it.
func apiOptions(tokens string, hop int32, endpoint, state string) Result {
	v := &ec2View{inst: &types.Instance{MetadataOptions: &types.InstanceMetadataOptionsResponse{
		HttpTokens: types.HttpTokensState(tokens), HttpPutResponseHopLimit: aws.Int32(hop),
		HttpEndpoint: types.InstanceMetadataEndpointState(endpoint), State: types.InstanceMetadataOptionsState(state),
	}}}
	r := v.metadataOptions()
	switch {
	case r.Status == Failed && r.Severity == SeverityUnset:
		r.Severity = High
	case r.Status == Passed:
		r.Severity = Informational
	}
	return r
}

func measuredV1(status int) Result {
	s := Passed
	if status == 200 {
		s = Failed
	}
	return NewResult("imds-v1-enabled", s, "", "measured").With("http_status", status)
}

func measuredHop(n int) Result {
	s := Passed
	if n > 1 {
		s = Failed
	}
	return NewResult("imds-hop-limit", s, "", "measured").With("hop_limit", n)
}

func TestJoinMetadataOptions(t *testing.T) {
	cases := []struct {
		name     string
		api      Result
		measured []Result
		status   Status
		severity Severity
		wrong    []string // the side named wrong per disagreement
		reason   string
	}{
		{"agree, strong", apiOptions("required", 1, "enabled", "applied"), []Result{measuredV1(401), measuredHop(1)},
			Passed, Informational, nil, "measured the same"},
		{"agree, weak", apiOptions("optional", 1, "enabled", "applied"), []Result{measuredV1(200), measuredHop(1)},
			Failed, High, nil, "allow IMDSv1 (HttpTokens optional); the imds probe measured the same"},
		{"host answers v1 despite required", apiOptions("required", 1, "enabled", "applied"), []Result{measuredV1(200), measuredHop(1)},
			Failed, High, []string{"host"}, "the host side is wrong"},
		{"API allows v1, host refuses", apiOptions("optional", 1, "enabled", "applied"), []Result{measuredV1(401), measuredHop(1)},
			Failed, High, []string{"api"}, "the API side is wrong"},
		{"tokens travel further than the setting", apiOptions("required", 1, "enabled", "applied"), []Result{measuredV1(401), measuredHop(3)},
			Failed, High, []string{"host"}, "hop limit 3, above the API's 1"},
		{"setting looser than measured", apiOptions("required", 2, "enabled", "applied"), []Result{measuredV1(401), measuredHop(1)},
			Failed, High, []string{"api"}, "the API's hop limit is 2"},
		{"both settings disagree", apiOptions("optional", 2, "enabled", "applied"), []Result{measuredV1(401), measuredHop(1)},
			Failed, High, []string{"api", "api"}, "HttpTokens is optional"},
		{"pending change", apiOptions("required", 1, "enabled", "pending"), []Result{measuredV1(200), measuredHop(1)},
			Warning, Low, []string{"host"}, "pending"},
		{"endpoint off, agree", apiOptions("required", 1, "disabled", "applied"), []Result{measuredV1(403), NewResult("imds-hop-limit", Passed, "", "off").With("http_status", 403)},
			Passed, Informational, nil, "measured the same"},
		{"endpoint off, yet answered", apiOptions("required", 1, "disabled", "applied"), []Result{measuredV1(401), measuredHop(1)},
			Failed, High, []string{"host"}, "metadata endpoint is disabled"},
		{"imds probe not run", apiOptions("required", 1, "enabled", "applied"), nil,
			Passed, Informational, nil, "the imds probe did not run"},
		{"imds probe could not look", apiOptions("required", 1, "enabled", "applied"),
			[]Result{NewResult("imds-v1-enabled", NotAvailable, "", "IMDS access disabled by AWS_EC2_METADATA_DISABLED"), NewResult("imds-hop-limit", NotAvailable, "", "IMDS access disabled by AWS_EC2_METADATA_DISABLED")},
			Passed, Informational, nil, "measured nothing (IMDS access disabled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := Correlate(append([]Result{c.api}, c.measured...))
			r := rs[0]
			if r.Status != c.status || r.Severity != c.severity || !strings.Contains(r.Reason, c.reason) {
				t.Errorf("got %s %s: %s\nwant %s %s containing %q", r.Status, r.Severity, r.Reason, c.status, c.severity, c.reason)
			}
			ds, _ := r.Evidence["disagreements"].([]disagreement)
			var wrong []string
			for _, d := range ds {
				wrong = append(wrong, d.Wrong)
			}
			if !slices.Equal(wrong, c.wrong) {
				t.Errorf("wrong sides %v, want %v (%+v)", wrong, c.wrong, ds)
			}
			for i, m := range c.measured {
				if rs[i+1].Status != m.Status || rs[i+1].Reason != m.Reason {
					t.Errorf("the join changed the imds probe's %s", m.Check)
				}
			}
		})
	}
}

// TestCorrelateWorldOpenSSH raises exactly the sshd listeners whose port a security group
// opens to the world.
func TestCorrelateWorldOpenSSH(t *testing.T) {
	ssh := func(res string, port int) Result {
		r := NewResult("ssh-listening-public", Failed, res, "SSH listens").With("port", port)
		r.Severity = Medium
		return r
	}
	sg := NewResult("sg-world-open-admin-port", Failed, "arn:aws:ec2:us-east-1:123456789012:security-group/sg-1", "open").With("port", 22)
	sg.Severity = Critical
	closed := NewResult("sg-world-open-admin-port", Passed, "", "none").With("port", 2022)
	out := Correlate([]Result{ssh("tcp://0.0.0.0:22", 22), ssh("tcp://[::]:22", 22), ssh("tcp://0.0.0.0:2022", 2022), sg, closed})
	for i, want := range []Severity{Critical, Critical, Medium} {
		r := out[i]
		if r.Severity != want {
			t.Errorf("%s: %s, want %s", r.Resource, r.Severity, want)
		}
		if want == Critical && (!strings.Contains(r.Reason, "raised to CRITICAL: a security group") || !slices.Equal(r.Evidence["raised_by"].([]string), []string{"sg-world-open-admin-port"})) {
			t.Errorf("%s: reason %q raised_by %v", r.Resource, r.Reason, r.Evidence["raised_by"])
		}
	}
}

func TestWorldOpen(t *testing.T) {
	perm := func(proto string, from, to int32, v4, v6 string) types.IpPermission {
		p := types.IpPermission{IpProtocol: aws.String(proto)}
		if proto != "-1" {
			p.FromPort, p.ToPort = aws.Int32(from), aws.Int32(to)
		}
		if v4 != "" {
			p.IpRanges = []types.IpRange{{CidrIp: aws.String(v4)}}
		}
		if v6 != "" {
			p.Ipv6Ranges = []types.Ipv6Range{{CidrIpv6: aws.String(v6)}}
		}
		return p
	}
	cases := []struct {
		name string
		perm types.IpPermission
		port int
		want []string
	}{
		{"all traffic", perm("-1", 0, 0, "0.0.0.0/0", "::/0"), 3389, []string{"all all ports from 0.0.0.0/0", "all all ports from ::/0"}},
		{"range covers", perm("tcp", 1, 1024, "0.0.0.0/0", ""), 22, []string{"tcp 1-1024 from 0.0.0.0/0"}},
		{"numeric protocol", perm("6", 22, 22, "", "::/0"), 22, []string{"tcp 22 from ::/0"}},
		{"range misses", perm("tcp", 23, 1024, "0.0.0.0/0", ""), 22, nil},
		{"udp is not ssh", perm("udp", 0, 65535, "0.0.0.0/0", ""), 22, nil},
		{"narrow source", perm("tcp", 22, 22, "10.0.0.0/8", "2001:db8::/32"), 22, nil},
	}
	for _, c := range cases {
		var got []string
		for _, r := range worldOpen([]types.IpPermission{c.perm}, c.port) {
			got = append(got, r.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestEC2ARNsFollowThePartition(t *testing.T) {
	v := &ec2View{region: "cn-north-1"}
	v.id.Partition, v.id.AccountID = "aws-cn", "123456789012"
	if got := v.arn("security-group", "sg-1"); got != "arn:aws-cn:ec2:cn-north-1:123456789012:security-group/sg-1" {
		t.Errorf("arn %s", got)
	}
}
