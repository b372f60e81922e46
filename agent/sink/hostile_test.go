package sink

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

// floodSize is what a hostile endpoint answers; the agent's bound is 2 MiB a body.
const floodSize = 64 << 20

// hostileBudget is what one flooded call may cost in allocations: "a few MiB".
const hostileBudget = 12 << 20

// TestHostileEndpointsBounded: CloudWatch Logs, Security Hub, STS (assumed role) and IMDS
// (instance-profile credentials) answering a body that a streaming decoder keeps reading
// (an endless JSON string, an endless XML text) cost at most a few MiB each: the body is cut
// before the SDK reads it, and the call fails (its items stay for a retry).
func TestHostileEndpointsBounded(t *testing.T) {
	// One flooding endpoint stands for every service, IMDS's credentials included: not
	// internal/fakeimds, which keeps to IMDS's protocol and cannot flood with a prefix.
	hostile := func(prefix string, declare bool) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/latest/api/token" {
				w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			}
			testenv.Flood(w, prefix, floodSize, declare)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	log := slog.New(slog.DiscardHandler)
	opts := AWSOptions{MaxAttempts: 1, HTTPTimeout: 30 * time.Second}
	for _, tc := range []struct {
		name string
		env  map[string]string
		send func(ctx context.Context) error
	}{
		{"cloudwatch logs", map[string]string{"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": hostile(`{"nextSequenceToken":"`, false)}, func(ctx context.Context) error {
			cfg, err := LoadAWS(ctx, opts)
			if err != nil {
				return err
			}
			_, err = NewCloudWatch(cfg, "g", "s", log).Send(ctx, events(t, 1, time.Now(), 0, 1))
			return err
		}},
		{"security hub", map[string]string{"AWS_ENDPOINT_URL_SECURITYHUB": hostile(`{"FailedCount":0,"FailedFindings":[{"Id":"`, true)}, func(ctx context.Context) error {
			cfg, err := LoadAWS(ctx, opts)
			if err != nil {
				return err
			}
			_, err = NewSecurityHub(cfg, log).Send(ctx, findings(1, "f"))
			return err
		}},
		{"sts", map[string]string{"AWS_ENDPOINT_URL_STS": hostile(`<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>`, false)}, func(ctx context.Context) error {
			cfg, err := LoadAWS(ctx, opts)
			if err != nil {
				return err
			}
			role := AssumeRole(cfg, "arn:aws:iam::111122223333:role/central", "s")
			_, err = role.Credentials.Retrieve(ctx)
			return err
		}},
		{"imds credentials", map[string]string{
			"AWS_EC2_METADATA_SERVICE_ENDPOINT": hostile("", false),
			"AWS_ACCESS_KEY_ID":                 "", "AWS_SECRET_ACCESS_KEY": "",
		}, func(ctx context.Context) error {
			cfg, err := LoadAWS(ctx, opts)
			if err != nil {
				return err
			}
			_, err = cfg.Credentials.Retrieve(ctx)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
				if v == "" {
					os.Unsetenv(k)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var err error
			cost := testenv.Allocated(func() { err = tc.send(ctx) })
			if err == nil {
				t.Error("a flooded answer was accepted")
			}
			budget := uint64(hostileBudget)
			if testenv.Race { // io.ReadAll allocates twice as much under -race (testenv.Allocated)
				budget *= 2
			}
			if cost > budget {
				t.Errorf("a %d MiB answer cost %.1f MiB of allocations, want at most %d MiB (err: %.200v)", floodSize>>20, float64(cost)/(1<<20), budget>>20, err)
			}
		})
	}
}
