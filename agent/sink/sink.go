// Package sink delivers spooled items to AWS: CloudWatch Logs events and Security Hub
// findings. A sink makes one delivery attempt per item and says, per item, whether it was
// accepted, rejected for good (logged and counted, never retried), or should be retried. It
// does not loop: the SDK retries a failed call a few times within the attempt (standard
// retryer, exponential backoff with jitter), and the agent's delivery loop retries what is
// left later, with its own capped backoff. Nothing leaves the spool until accepted or rejected.
package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/ec2sec/ec2sec/internal/httplimit"
)

// Outcome is what became of one item.
type Outcome uint8

// Outcomes.
const (
	Retry    Outcome = iota // not delivered; keep it and try again later
	Accepted                // delivered
	Rejected                // refused for good (too old, invalid); logged and counted
)

func (o Outcome) String() string {
	return [...]string{"retry", "accepted", "rejected"}[o]
}

// Sink delivers a spool batch's items. It returns one outcome per item and an error when a
// call failed (the items it covered are Retry).
type Sink interface {
	Name() string
	Send(ctx context.Context, items []json.RawMessage) ([]Outcome, error)
}

// AWSOptions configure the SDK clients.
type AWSOptions struct {
	Region string // "" = the SDK's default (AWS_REGION, shared config)
	// MaxAttempts per API call, including the first (default 4); MaxBackoff caps the SDK's
	// jittered backoff between them (default 20s).
	MaxAttempts int
	MaxBackoff  time.Duration
	// HTTPTimeout bounds one HTTP exchange (default 30s) so a slow endpoint cannot hang us.
	HTTPTimeout time.Duration
	// Backoff, when set, replaces the SDK's jittered exponential backoff between attempts
	// (fleet simulations scale it with their compressed clock).
	Backoff retry.BackoffDelayer
}

// LoadAWS returns the SDK config: the default credential chain, AWS_ENDPOINT_URL_* endpoints,
// bounded HTTP exchanges and the standard retryer without a client-side retry quota (the
// delivery loop, not a token bucket, decides when to give up).
func LoadAWS(ctx context.Context, o AWSOptions) (aws.Config, error) {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 20 * time.Second
	}
	if o.HTTPTimeout <= 0 {
		o.HTTPTimeout = 30 * time.Second
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.MaxBackoff = o.MaxBackoff
				so.RateLimiter = ratelimit.None
				if o.Backoff != nil {
					so.Backoff = o.Backoff
				}
			})
		}),
	}
	opts = append(opts, Bounded(o.HTTPTimeout)...)
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	cfg, err := LoadConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws config: %w", err)
	}
	return cfg, nil
}

// LoadConfig is config.LoadDefaultConfig with a credential chain that never uses IMDSv1. The
// SDK's instance-profile provider falls back to a request without a session token when the
// token request fails (a 403, 404 or 405, or a timeout); the agent must not be one of the IMDSv1
// callers it reports. Its IMDS client is built as the SDK would build it from the same options
// (endpoint, mode, AWS_EC2_METADATA_DISABLED, the bounded HTTP client), fallback off.
func LoadConfig(ctx context.Context, opts ...func(*config.LoadOptions) error) (aws.Config, error) {
	base, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, err
	}
	client := imds.NewFromConfig(base, func(o *imds.Options) { o.EnableFallback = aws.FalseTernary })
	return config.LoadDefaultConfig(ctx, append(opts, config.WithEC2RoleCredentialOptions(func(o *ec2rolecreds.Options) {
		o.Client = client
	}))...)
}

// Bounded returns the config options that bound every exchange of the clients built from
// the config: in time (timeout; 0 = the SDK's defaults), and in size, headers and bodies
// past a few MiB failing before the SDK reads them into memory. No endpoint (CloudWatch Logs,
// Security Hub, STS, EC2, IMDS for credentials) can make the agent allocate without limit.
// The client stays the SDK's buildable one, so AWS_CA_BUNDLE keeps working.
func Bounded(timeout time.Duration) []func(*config.LoadOptions) error {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxResponseHeaderBytes = httplimit.AWSHeaders
		if timeout > 0 {
			t.ResponseHeaderTimeout = timeout
		}
	})
	if timeout > 0 {
		hc = hc.WithTimeout(timeout)
	}
	return []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		config.WithAPIOptions([]func(*middleware.Stack) error{httplimit.SDKOption(httplimit.AWSAPI)}),
	}
}

// AssumeRole returns a copy of cfg whose credentials come from assuming roleARN through STS
// with cfg's own credentials, cached and refreshed before they expire.
func AssumeRole(cfg aws.Config, roleARN, session string) aws.Config {
	out := cfg.Copy()
	p := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), roleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = session
	})
	out.Credentials = aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = 5 * time.Minute
		o.ExpiryWindowJitterFrac = 0.2
	})
	return out
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
