package probes

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/ec2sec/ec2sec/probes/metadata"
)

// NetworkProbe reports how the instance is exposed on the network as IMDS describes it: a
// public IPv4 address makes every listener a candidate for the internet.
type NetworkProbe struct{}

// Name implements Probe.
func (NetworkProbe) Name() string { return "network" }

// Checks implements Probe.
func (NetworkProbe) Checks() []Check {
	return []Check{
		{
			ID: "public-ipv4", Probe: "network", Severity: Medium,
			Title:      "The instance has a public IPv4 address",
			FailedWhen: "the instance has a public IPv4 address",
			Practices:  []int{7}, SecurityHub: []string{"EC2.9"},
			Remediation: Remediation{
				Text: "Move the instance to a private subnet (or launch it with AssociatePublicIpAddress false, and release any Elastic IP); reach it through Session Manager, EC2 Instance Connect Endpoint or a load balancer, with VPC endpoints for ssm, ssmmessages and ec2messages.",
				URL:  "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-ip-addressing.html",
			},
		},
	}
}

// Run implements Probe.
func (NetworkProbe) Run(ctx context.Context, env *Env) ([]Result, error) {
	const check = "public-ipv4"
	if env.IMDS.Disabled() {
		return nil, metadata.ErrDisabled
	}
	if !env.Identity.Reachable {
		return nil, errors.New(env.Identity.Reason)
	}
	v, err := env.IMDS.Get(ctx, "public-ipv4")
	switch {
	case errors.Is(err, metadata.ErrNotFound):
		return []Result{NewResult(check, Passed, "", "IMDS has no public-ipv4: the instance has no public IPv4 address")}, nil
	case err != nil:
		return []Result{NewResult(check, NotAvailable, "", "cannot read public-ipv4 from IMDS: "+err.Error())}, nil
	}
	v = strings.TrimSpace(v)
	a, perr := netip.ParseAddr(v)
	if perr != nil || !a.Is4() {
		return []Result{NewResult(check, NotAvailable, "", "IMDS public-ipv4 is not an IPv4 address")}, nil
	}
	return []Result{NewResult(check, Failed, "", "the instance has the public IPv4 address "+a.String()).
		With("public_ipv4", a.String())}, nil
}
