package agent

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// TestHostileEC2EndpointBounded: an EC2 endpoint answering an endless XML text costs the
// ec2api probe's client at most a few MiB (the body is cut before the SDK's decoder reads
// it); the call fails and the probe says NOT_AVAILABLE. The other endpoints are in
// agent/sink and probes/metadata (TestHostileEndpointsBounded, TestHostileIMDSBounded).
func TestHostileEC2EndpointBounded(t *testing.T) {
	testenv.System(t)
	const flood = 64 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		testenv.Flood(w, `<DescribeInstancesResponse><requestId>`, flood, false)
	}))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_EC2", srv.URL)
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	o := ScanOptions{Log: slog.New(slog.DiscardHandler), IMDS: metadata.New(metadata.Options{}), Config: DefaultConfig()}
	o.Config.Region = "us-east-1"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := newEC2Client(ctx, o, metadata.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	cost := testenv.Allocated(func() { _, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}) })
	if err == nil {
		t.Error("a flooded answer was accepted")
	}
	if cost > 12<<20 {
		t.Errorf("a %d MiB answer cost %.1f MiB of allocations, want at most 12 MiB (err: %.200v)", flood>>20, float64(cost)/(1<<20), err)
	}
}
