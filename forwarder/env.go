package forwarder

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// Defaults of the import rate: below Security Hub's 10 per second, burst 30, per account and
// Region (shared with every other producer there); the stack runs one forwarder at a time.
const (
	DefaultRate  = 8
	DefaultBurst = 20
)

// FromEnv builds a forwarder from the environment:
//   - AWS_REGION, and the SDK's endpoint settings (AWS_ENDPOINT_URL_SECURITYHUB), for Security
//     Hub; the SDK's credential chain (the function's role);
//   - EC2SEC_HUB_ACCOUNT: the importing account (default: the account in
//     EC2SEC_FUNCTION_ARN, which the runtime loop learns from the first invocation);
//   - EC2SEC_ALLOWED_ACCOUNTS: comma-separated accounts whose instances may send findings
//     (default: the importing account alone);
//   - EC2SEC_TRUST_PEM: certificates replacing the embedded AWS ones (inline PEM or a path);
//   - EC2SEC_IMPORT_RPS, EC2SEC_IMPORT_BURST, EC2SEC_IMPORT_CONCURRENCY: the import pacing.
func FromEnv(ctx context.Context, getenv func(string) string, metrics io.Writer, log *slog.Logger) (*Forwarder, error) {
	trust, err := LoadTrust(getenv)
	if err != nil {
		return nil, err
	}
	region := getenv("AWS_REGION")
	if region == "" {
		return nil, errors.New("AWS_REGION is not set")
	}
	hub := getenv("EC2SEC_HUB_ACCOUNT")
	if hub == "" {
		hub = accountOfARN(getenv("EC2SEC_FUNCTION_ARN"))
	}
	accounts := map[string]bool{}
	for a := range strings.SplitSeq(getenv("EC2SEC_ALLOWED_ACCOUNTS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			accounts[a] = true
		}
	}
	num := func(k string, def float64) (float64, error) {
		v := getenv(k)
		if v == "" {
			return def, nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("%s %q: not a positive number", k, v)
		}
		return f, nil
	}
	rate, err := num("EC2SEC_IMPORT_RPS", DefaultRate)
	if err != nil {
		return nil, err
	}
	burst, err := num("EC2SEC_IMPORT_BURST", DefaultBurst)
	if err != nil {
		return nil, err
	}
	conc, err := num("EC2SEC_IMPORT_CONCURRENCY", 3)
	if err != nil {
		return nil, err
	}
	// One attempt per call: the importer retries through its limiter, so a throttled call is
	// never repeated faster than the rate.
	cfg, err := sink.LoadAWS(ctx, sink.AWSOptions{Region: region, MaxAttempts: 1, HTTPTimeout: 20 * time.Second})
	if err != nil {
		return nil, err
	}
	return &Forwarder{
		Config: Config{
			Verify: PKCS7Verifier(trust), Accounts: accounts, HubAccount: hub, HubRegion: region,
			Partition: cmp.Or(getenv("EC2SEC_PARTITION"), metadata.PartitionOf(region)),
		},
		Importer: &Importer{
			API: securityhub.NewFromConfig(cfg), Limiter: NewLimiter(rate, int(burst), RealClock),
			Clock: RealClock, Log: log, Concurrency: int(conc),
		},
		Log: log, Metrics: metrics, Clock: RealClock,
	}, nil
}

// accountOfARN returns the account of arn:partition:service:region:account:..., or "".
func accountOfARN(arn string) string {
	p := strings.Split(arn, ":")
	if len(p) < 5 || p[0] != "arn" {
		return ""
	}
	return p[4]
}
