package probes

// The ssm probe's ssm-endpoints-unreachable check: the endpoints the agent must reach, named
// as the agent would name them (its config, the SDK's environment), each dialled.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ec2sec/ec2sec/probes/metadata"
)

// ssmService is one endpoint the agent needs: its service name, the SDK's environment
// override, and the key of the agent's own endpoint override in amazon-ssm-agent.json.
type ssmService struct{ name, envVar, agentKey string }

var ssmServices = []ssmService{
	{"ssm", "AWS_ENDPOINT_URL_SSM", "Ssm"},
	{"ssmmessages", "AWS_ENDPOINT_URL_SSMMESSAGES", "Mgs"},
	{"ec2messages", "AWS_ENDPOINT_URL_EC2MESSAGES", "Mds"},
}

// ssmTarget is where one endpoint is checked and why there.
type ssmTarget struct {
	svc        ssmService
	host, port string
	source     string
	err        string // could not name a target
}

func ssmTargets(env *Env, layout ssmLayout) []ssmTarget {
	getenv := env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	agentCfg := ssmAgentEndpoints(env, layout)
	var out []ssmTarget
	for _, s := range ssmServices {
		t := ssmTarget{svc: s}
		switch {
		case getenv(s.envVar) != "":
			t.host, t.port, t.err = hostPort(getenv(s.envVar))
			t.source = s.envVar
		case getenv("AWS_ENDPOINT_URL") != "":
			t.host, t.port, t.err = hostPort(getenv("AWS_ENDPOINT_URL"))
			t.source = "AWS_ENDPOINT_URL"
		case agentCfg[s.agentKey] != "":
			t.host, t.port, t.err = hostPort(agentCfg[s.agentKey])
			t.source = "amazon-ssm-agent.json " + s.agentKey + ".Endpoint"
		case env.Identity.Region != "":
			// Region and domain come from IMDS: checked before a name is made of them, so
			// a hostile IMDS cannot have ssm.<region>.attacker.example resolved.
			domain := cmp.Or(env.Identity.Domain, "amazonaws.com")
			switch {
			case !metadata.ValidRegion(env.Identity.Region):
				t.err = "the region IMDS gave is not an AWS region name (such as us-east-1): no endpoint name is made of it"
			case !metadata.KnownDomain(domain):
				t.err = "the domain IMDS gave (services/domain) is not the DNS suffix of an AWS partition (amazonaws.com, amazonaws.com.cn, amazonaws.eu, c2s.ic.gov, sc2s.sgov.gov, cloud.adc-e.uk, csp.hci.ic.gov): no name under it is resolved"
			default:
				t.host, t.port = fmt.Sprintf("%s.%s.%s", s.name, env.Identity.Region, domain), "443"
				t.source = "region " + env.Identity.Region
			}
		default:
			reason := env.Identity.Reason
			if reason == "" {
				reason = "the region is unknown"
			}
			t.err = "no region to name the endpoint: " + reason
		}
		out = append(out, t)
	}
	return out
}

// ssmAgentEndpoints reads the endpoint overrides of the agent's own config, which is where
// the agent connects: {"Ssm":{"Endpoint":...},"Mgs":{...},"Mds":{...}}.
func ssmAgentEndpoints(env *Env, layout ssmLayout) map[string]string {
	out := map[string]string{}
	for _, name := range layout.config {
		b, _, err := env.FS.ReadFile(name, 256<<10)
		if err != nil {
			continue
		}
		var cfg map[string]json.RawMessage
		if json.Unmarshal(b, &cfg) != nil {
			continue
		}
		for _, s := range ssmServices {
			var sec struct{ Endpoint string }
			if raw, ok := cfg[s.agentKey]; ok && json.Unmarshal(raw, &sec) == nil && sec.Endpoint != "" {
				out[s.agentKey] = sec.Endpoint
			}
		}
		return out
	}
	return out
}

// badEndpoint is hostPort's message for a value that does not parse.
const badEndpoint = "bad endpoint: not [https://]host[:port][/path] (the value is not shown: it may hold credentials)"

// hostPort takes "https://host[:port][/path]" or "host[:port]" and returns host and port
// (443 by default, 80 for http).
func hostPort(s string) (host, port, errMsg string) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	// Messages never quote the value as given: an endpoint URL may carry user:password@
	// (or a token in its path). What they show is the scheme and host[:port] only.
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" {
		return "", "", badEndpoint
	}
	port = u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	// url.Parse takes any digits as a port; the dialer would refuse them and the endpoint
	// would look unreachable instead of misconfigured.
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Sprintf("bad port in endpoint %s://%s", u.Scheme, u.Host)
	}
	return u.Hostname(), port, ""
}

// ssmReachability resolves and connects to each endpoint concurrently, each within
// env.DialTimeout (2 s) for DNS and TCP together. It never sends a byte: a TCP handshake is
// what a private subnet without VPC endpoints lacks.
func ssmReachability(ctx context.Context, env *Env, layout ssmLayout) []Result {
	if env.Offline {
		return []Result{NewResult("ssm-endpoints-unreachable", NotAvailable, "", env.Identity.Reason)}
	}
	targets := ssmTargets(env, layout)
	out := make([]Result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { out[i] = ssmReach(ctx, env, t) })
	}
	wg.Wait()
	return out
}

func ssmReach(ctx context.Context, env *Env, t ssmTarget) Result {
	const check = "ssm-endpoints-unreachable"
	if t.err != "" {
		return NewResult(check, NotAvailable, t.svc.name+" endpoint", t.svc.name+": "+t.err).With("service", t.svc.name)
	}
	timeout := env.DialTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	// No fallback to the system's resolver or dialer: the scan injects both, and an Env
	// built without them (a test) must not reach the network by accident.
	resolver, dial := env.Resolver, env.Dial
	if resolver == nil || dial == nil {
		return NewResult(check, NotAvailable, t.svc.name+" endpoint", "no resolver or dialer was given to the probe").With("service", t.svc.name)
	}
	target := net.JoinHostPort(t.host, t.port)
	// The service is part of the resource: overrides may point all three at one address.
	r := NewResult(check, Passed, t.svc.name+" endpoint "+target, "").
		With("service", t.svc.name).With("host", t.host).With("port", t.port).With("source", t.source)
	fail := func(stage string, err error) Result {
		r.Status = Failed
		r.Reason = fmt.Sprintf("%s endpoint %s: %s failed: %v", t.svc.name, target, stage, err)
		return r.With("stage", stage).With("error", err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()

	addrs := []string{t.host}
	if _, err := netip.ParseAddr(t.host); err != nil {
		addrs, err = resolver.LookupHost(ctx, t.host)
		if err != nil {
			return fail("DNS lookup", err)
		}
		r = r.With("addresses", addrs)
		r = r.With("private_addresses", slices.ContainsFunc(addrs, func(a string) bool {
			ip, err := netip.ParseAddr(a)
			return err == nil && ip.IsPrivate()
		}))
	}
	var lastErr error
	for _, a := range addrs {
		c, err := dial(ctx, "tcp", net.JoinHostPort(a, t.port))
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		c.Close()
		r = r.With("connected_to", net.JoinHostPort(a, t.port)).With("duration_ms", time.Since(start).Milliseconds())
		r.Reason = fmt.Sprintf("%s endpoint %s reached (TCP %s)", t.svc.name, target, net.JoinHostPort(a, t.port))
		return r
	}
	if lastErr == nil {
		lastErr = errors.New("no address")
	}
	return fail("TCP connect", lastErr)
}
