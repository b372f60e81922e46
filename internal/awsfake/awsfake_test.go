package awsfake

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestHubRateLimit: BatchImportFindings allows a burst of 30 and 10 per second after it, per
// account and region, on the fake's rate clock; the 31st call within an instant is throttled
// with TooManyRequestsException (HTTP 429), as AWS answers.
func TestHubRateLimit(t *testing.T) {
	f := New(t)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.RateClock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	call := func(account, region string) int {
		body := fmt.Sprintf(`{"Findings":[{"SchemaVersion":"2018-10-08","Id":"x","ProductArn":"arn:aws:securityhub:%s:%s:product/%s/default","GeneratorId":"g","AwsAccountId":%q,"CreatedAt":"2026-01-01T00:00:00Z","UpdatedAt":"2026-01-01T00:00:00Z","Title":"t","Description":"d","Resources":[]}]}`, region, account, account, account)
		req, _ := http.NewRequest(http.MethodPost, f.URL+"/findings/import", strings.NewReader(body))
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/securityhub/aws4_request")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 429 && resp.Header.Get("X-Amzn-ErrorType") != "TooManyRequestsException" {
			t.Errorf("429 without TooManyRequestsException: %v", resp.Header)
		}
		return resp.StatusCode
	}
	ok := 0
	for range 40 {
		if call("111111111111", "us-east-1") == 200 {
			ok++
		}
	}
	if ok != 30 {
		t.Errorf("%d of 40 calls at one instant passed, want the burst of 30", ok)
	}
	if call("222222222222", "us-east-1") != 200 || call("111111111111", "eu-west-1") != 200 {
		t.Error("another account or region shares the bucket")
	}
	advance(time.Second)
	ok = 0
	for range 20 {
		if call("111111111111", "us-east-1") == 200 {
			ok++
		}
	}
	if ok != 10 {
		t.Errorf("%d calls passed one second later, want 10", ok)
	}
	advance(time.Hour)
	ok = 0
	for range 40 {
		if call("111111111111", "us-east-1") == 200 {
			ok++
		}
	}
	if ok != 30 {
		t.Errorf("%d calls passed after an idle hour, want 30 (the burst, not more)", ok)
	}
	if n := f.Throttled(OpBatchImportFindings); n != 10+10+10 {
		t.Errorf("%d throttled, want 30", n)
	}
}
