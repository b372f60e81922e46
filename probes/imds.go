package probes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ec2sec/ec2sec/probes/metadata"
)

// IMDSProbe measures the instance metadata service from inside: whether it still answers
// IMDSv1, the token hop limit on the wire, and whether an instance profile is attached.
type IMDSProbe struct{}

// Name implements Probe.
func (IMDSProbe) Name() string { return "imds" }

const imdsDocs = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-options.html"

// Checks implements Probe.
func (IMDSProbe) Checks() []Check {
	return []Check{
		{
			ID: "imds-v1-enabled", Probe: "imds", Severity: High,
			Title:      "IMDSv1 is enabled: the metadata service answers requests without a session token",
			FailedWhen: "a GET without token is answered 200",
			Practices:  []int{1}, CIS: []string{"5.6"}, SecurityHub: []string{"EC2.8"},
			Remediation: Remediation{
				Text: "Require IMDSv2: aws ec2 modify-instance-metadata-options --instance-id <id> --http-tokens required --http-endpoint enabled; set the account default with aws ec2 modify-instance-metadata-defaults --http-tokens required.",
				URL:  imdsDocs,
			},
		},
		{
			ID: "imds-hop-limit", Probe: "imds", Severity: Low,
			Title:      "IMDS token hop limit above 1 lets containers and forwarded traffic fetch instance credentials",
			FailedWhen: "the token response arrives with IP TTL (hop limit) > 1",
			RaisedWhen: "HIGH when a container runtime (docker, containerd, podman, cri-o) is present",
			Practices:  []int{1},
			Remediation: Remediation{
				Text: "Set the PUT response hop limit to 1 (2 only where containers must reach IMDS through a bridge): aws ec2 modify-instance-metadata-options --instance-id <id> --http-put-response-hop-limit 1.",
				URL:  imdsDocs,
			},
		},
		{
			ID: "imds-no-instance-profile", Probe: "imds", Severity: Medium,
			Title:      "No IAM instance profile: software on the instance needs stored keys to call AWS",
			FailedWhen: "no IAM role attached (`iam/info` 404)",
			Practices:  []int{4},
			Remediation: Remediation{
				Text: "Attach an instance profile with a least-privilege role (aws ec2 associate-iam-instance-profile) and remove long-lived keys from the host.",
				URL:  "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/iam-roles-for-amazon-ec2.html",
			},
		},
	}
}

// Run implements Probe.
func (IMDSProbe) Run(ctx context.Context, env *Env) ([]Result, error) {
	if env.IMDS.Disabled() {
		return nil, metadata.ErrDisabled
	}
	if !env.Identity.Reachable {
		return nil, errors.New(env.Identity.Reason)
	}
	endpoint := env.IMDS.Endpoint()
	// Three independent questions, each a few round trips: asked at once, the probe takes
	// as long as the hop limit's measurement alone.
	var v1, hop, profile Result
	var wg sync.WaitGroup
	wg.Go(func() { v1 = imdsV1(ctx, endpoint, env.HTTPTimeout) })
	wg.Go(func() { profile = imdsProfile(ctx, env) })
	hop = imdsHopLimit(ctx, env, endpoint)
	wg.Wait()
	if v1.Status == Passed && v1.Evidence["http_status"] == http.StatusForbidden {
		// The endpoint is off: nothing can fetch a token, whatever its hop limit.
		hop = NewResult("imds-hop-limit", Passed, "", "the IMDS endpoint is turned off, so no token can be fetched at any hop count").
			With("http_status", http.StatusForbidden)
	}
	return []Result{v1, hop, profile}, nil
}

// imdsV1 sends a raw GET without a token. The SDK cannot tell us this: it falls back to v1
// silently (and ec2sec's own client never does).
func imdsV1(ctx context.Context, endpoint string, timeout time.Duration) Result {
	const check = "imds-v1-enabled"
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/latest/meta-data/", nil)
	if err != nil {
		return NewResult(check, NotAvailable, "", fmt.Sprintf("bad IMDS endpoint %q: %v", endpoint, err))
	}
	resp, err := noRedirectClient().Do(req)
	if err != nil {
		return NewResult(check, NotAvailable, "", fmt.Sprintf("IMDS did not answer a GET without token: %v", err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	r := func(s Status, reason string) Result {
		return NewResult(check, s, "", reason).With("http_status", resp.StatusCode).With("endpoint", endpoint)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return r(Failed, "IMDS answered a GET without a session token (HttpTokens is optional): an SSRF can read instance credentials")
	case http.StatusUnauthorized:
		return r(Passed, "IMDS refused a GET without a session token (401): IMDSv2 is required")
	case http.StatusForbidden:
		return r(Passed, "IMDS answered 403: the metadata endpoint is turned off (HttpEndpoint disabled)")
	default:
		return r(NotAvailable, fmt.Sprintf("IMDS answered a GET without token with unexpected HTTP %d", resp.StatusCode))
	}
}

func noRedirectClient() *http.Client {
	return &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: (&metadata.Dialer{}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// containerRuntimes are the daemons whose containers can reach IMDS through a bridge, by the
// socket they listen on and the process name they run as.
var containerRuntimes = []struct {
	name, comm string
	sockets    []string
}{
	{"docker", "dockerd", []string{"/run/docker.sock", "/var/run/docker.sock"}},
	{"containerd", "containerd", []string{"/run/containerd/containerd.sock", "/var/run/containerd/containerd.sock"}},
	{"podman", "podman", []string{"/run/podman/podman.sock", "/var/run/podman/podman.sock"}},
	{"cri-o", "crio", []string{"/run/crio/crio.sock", "/var/run/crio/crio.sock"}},
}

// imdsHopLimit measures the hop limit and rates it: above 1 fails, and a container runtime on
// the host raises it to HIGH (a container one hop away can then take the instance's role).
func imdsHopLimit(ctx context.Context, env *Env, endpoint string) Result {
	const check = "imds-hop-limit"
	n, err := measureHopLimit(ctx, endpoint, env.HTTPTimeout)
	if err != nil {
		return NewResult(check, NotAvailable, "", "cannot measure the hop limit: "+err.Error())
	}
	r := NewResult(check, Passed, "", "the IMDS token response arrives with hop limit 1: only this host can fetch tokens").
		With("hop_limit", n).With("method", "IP_MINTTL on the token PUT")
	if n <= 1 {
		return r
	}
	r.Status = Failed
	runtimes := detectContainerRuntimes(env)
	r = r.With("container_runtimes", runtimes)
	r.Reason = fmt.Sprintf("the IMDS token response arrives with hop limit %d: anything %d network hops away can fetch instance credentials", n, n-1)
	if len(runtimes) > 0 {
		r.Severity = High
		r.Reason += fmt.Sprintf(", and a container runtime (%s) runs here", strings.Join(runtimes, ", "))
	}
	return r
}

// detectContainerRuntimes names the container runtimes present: their socket under the root,
// or their daemon among the processes.
func detectContainerRuntimes(env *Env) []string {
	found := []string{}
	var comms []string
	if env.Proc != "" {
		if procs, err := env.processes(); err == nil {
			for _, pr := range procs {
				if pr.Comm != "" {
					comms = append(comms, pr.Comm)
				}
			}
		}
	}
	for _, rt := range containerRuntimes {
		present := slices.Contains(comms, rt.comm)
		for _, s := range rt.sockets {
			if fi, err := env.FS.Lstat(s); err == nil && fi.Mode()&fs.ModeSocket != 0 {
				present = true
			}
		}
		if present {
			found = append(found, rt.name)
		}
	}
	return found
}

// imdsProfile asks for iam/info (never for credentials): 404 means no role is attached.
func imdsProfile(ctx context.Context, env *Env) Result {
	const check = "imds-no-instance-profile"
	info, err := env.IMDS.Get(ctx, "iam/info")
	switch {
	case errors.Is(err, metadata.ErrNotFound):
		return NewResult(check, Failed, "", "IMDS has no iam/info: no IAM role is attached to this instance")
	case err != nil:
		return NewResult(check, NotAvailable, "", "cannot read iam/info: "+err.Error())
	}
	arn, ok := parseIAMInfo(info)
	if !ok {
		return NewResult(check, NotAvailable, "", "IMDS answered iam/info with something that is not an instance profile description")
	}
	return NewResult(check, Passed, "", "an IAM instance profile is attached").With("instance_profile_arn", arn)
}

// parseIAMInfo returns the instance profile ARN of a successful iam/info answer.
func parseIAMInfo(info string) (arn string, ok bool) {
	var v struct{ Code, InstanceProfileArn string }
	if json.Unmarshal([]byte(info), &v) != nil || v.Code != "Success" || !strings.HasPrefix(v.InstanceProfileArn, "arn:") {
		return "", false
	}
	return v.InstanceProfileArn, true
}
