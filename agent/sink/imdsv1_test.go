package sink

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestCredentialsNeverIMDSv1: the instance-profile credentials are fetched with a session
// token, and when the token request fails (a 404, as from an IMDS that predates IMDSv2) they
// are not fetched without one: the agent is never one of the IMDSv1 callers it reports. The
// SDK's own client would fall back to IMDSv1 there.
func TestCredentialsNeverIMDSv1(t *testing.T) {
	var tokens, tokenless atomic.Int32
	tokenOK := atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			if !tokenOK.Load() {
				http.NotFound(w, r)
				return
			}
			tokens.Add(1)
			w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
			io.WriteString(w, "fake-session-token")
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") == "" {
			tokenless.Add(1)
		}
		switch r.URL.Path {
		case "/latest/meta-data/iam/security-credentials/":
			io.WriteString(w, "web")
		case "/latest/meta-data/iam/security-credentials/web":
			io.WriteString(w, `{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAFAKEINSTANCEKEY1","SecretAccessKey":"fake/secret/for/the/test/only/0000000000","Token":"fake-role-session","Expiration":"2099-01-01T00:00:00Z","LastUpdated":"2026-12-06T00:00:00Z"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	// Only the instance profile can answer: no keys, profiles, web identity or container role.
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_V1_DISABLED"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, ok := range []bool{true, false} {
		tokenOK.Store(ok)
		cfg, err := LoadAWS(ctx, AWSOptions{Region: "us-east-1", MaxAttempts: 1, HTTPTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		creds, err := cfg.Credentials.Retrieve(ctx)
		if ok && (err != nil || creds.AccessKeyID != "ASIAFAKEINSTANCEKEY1" || tokens.Load() == 0) {
			t.Errorf("with a working token request: %v (%d token(s))", err, tokens.Load())
		}
		if !ok && err == nil {
			t.Errorf("without a token the credentials were fetched (%s)", creds.Source)
		}
	}
	if n := tokenless.Load(); n != 0 {
		t.Errorf("%d request(s) to IMDS without a session token", n)
	}
}
