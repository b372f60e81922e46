package agent

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// credentialsTimeout bounds the default chain's search for credentials (on EC2 it ends at the
// instance profile, through IMDS).
const credentialsTimeout = 5 * time.Second

// ec2Factory returns the scan's probes.Env.EC2: the EC2 client is built on first use, once
// per scan, so a scan whose probes never call EC2 never looks for credentials.
func ec2Factory(o ScanOptions, id metadata.Identity) func(context.Context) (probes.EC2API, error) {
	var (
		mu     sync.Mutex
		built  bool
		client probes.EC2API
		err    error
	)
	return func(ctx context.Context) (probes.EC2API, error) {
		mu.Lock()
		defer mu.Unlock()
		if !built {
			client, err = newEC2Client(ctx, o, id)
			built = true
		}
		return client, err
	}
}

// newEC2Client builds an EC2 client from the SDK's default configuration: the default
// credential chain (whose IMDS is the scan's, so AWS_EC2_METADATA_DISABLED and the endpoint
// override hold for credentials too), AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL, and the region
// from the config file, else the instance's. The standard retryer makes at most 2 attempts.
func newEC2Client(ctx context.Context, o ScanOptions, id metadata.Identity) (probes.EC2API, error) {
	region := cmp.Or(o.Config.Region, id.Region)
	if region == "" {
		return nil, errors.New("no AWS region: set region in the config file, or run on EC2")
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		config.WithRetryMaxAttempts(2),
		config.WithEC2IMDSEndpoint(o.IMDS.Endpoint()),
	}
	opts = append(opts, sink.Bounded(0)...) // bodies and headers; the probe bounds the time
	if o.IMDS.Disabled() {
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	cctx, cancel := context.WithTimeout(ctx, credentialsTimeout)
	defer cancel()
	cfg, err := sink.LoadConfig(cctx, opts...)
	if err != nil {
		o.Log.Info("AWS configuration unusable", "err", err)
		return nil, errors.New("cannot load the AWS configuration: " + err.Error())
	}
	if cfg.Credentials == nil {
		return nil, probes.ErrNoAWSCredentials
	}
	if _, err := cfg.Credentials.Retrieve(cctx); err != nil {
		// Expected off EC2 or without an instance profile; the chain's error lists every
		// provider it tried, which belongs in the log, not in each result.
		o.Log.Debug("no AWS credentials", "err", err)
		return nil, probes.ErrNoAWSCredentials
	}
	return ec2.NewFromConfig(cfg), nil
}
