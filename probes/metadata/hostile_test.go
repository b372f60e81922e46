package metadata

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

// floodSize is what a hostile IMDS answers; the agent's bounds are 4 KiB (token), 64 KiB
// (meta-data, dynamic) and 1 MiB (user data).
const floodSize = 64 << 20

// TestHostileIMDSBounded: an IMDS answering a huge token, meta-data item, identity document
// or user data (chunked, or with a Content-Length saying so) costs at most a few MiB, because
// the body is cut before the SDK reads it; the call fails and says why.
func TestHostileIMDSBounded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flood   string // the path that floods
		declare bool
		call    func(*Client) error
		budget  uint64
	}{
		{"token", "/latest/api/token", false, func(c *Client) error { _, err := c.Get(context.Background(), "iam/info"); return err }, 4 << 20},
		{"token with length", "/latest/api/token", true, func(c *Client) error { _, err := c.Get(context.Background(), "iam/info"); return err }, 4 << 20},
		{"meta-data", "/latest/meta-data/iam/info", false, func(c *Client) error { _, err := c.Get(context.Background(), "iam/info"); return err }, 4 << 20},
		{"identity document", "/latest/dynamic/instance-identity/document", true, func(c *Client) error {
			_, err := c.Dynamic(context.Background(), "instance-identity/document")
			return err
		}, 4 << 20},
		{"user data", "/latest/user-data", false, func(c *Client) error { _, err := c.UserData(context.Background()); return err }, 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Not internal/fakeimds: this endpoint floods one path with a body a streaming
			// decoder keeps reading (declared length or not, testenv.Flood) and answers the
			// rest with anything; fakeimds keeps to IMDS's protocol and whole-server faults.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == tc.flood:
					if tc.flood == "/latest/api/token" {
						w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
					}
					testenv.Flood(w, "", floodSize, tc.declare)
				case r.URL.Path == "/latest/api/token":
					token(w)
				default:
					w.Write([]byte("small"))
				}
			}))
			defer srv.Close()
			// A long timeout: the bound, not the clock, must be what stops the read.
			c := New(Options{Endpoint: srv.URL, Timeout: 20 * time.Second})
			var err error
			cost := testenv.Allocated(func() { err = tc.call(c) })
			if err == nil {
				t.Fatal("a flooded answer was accepted")
			}
			if !strings.Contains(err.Error(), "larger than") {
				t.Errorf("error does not say the answer was too large: %v", err)
			}
			if cost > tc.budget {
				t.Errorf("a %d MiB answer cost %.1f MiB of allocations, want at most %d MiB", floodSize>>20, float64(cost)/(1<<20), tc.budget>>20)
			}
		})
	}
	// Answers at the bound still work.
	srv := fakeimds.New(t)
	srv.Set(func(s *fakeimds.Server) {
		s.Paths["meta-data/iam/info"] = strings.Repeat("x", maxAnswer)
		s.Paths["user-data"] = strings.Repeat("x", maxUserData)
	})
	c := New(Options{Endpoint: srv.URL, Timeout: 20 * time.Second})
	if s, err := c.Get(context.Background(), "iam/info"); err != nil || len(s) != maxAnswer {
		t.Errorf("an answer of exactly %d bytes: %d bytes, %v", maxAnswer, len(s), err)
	}
	if b, err := c.UserData(context.Background()); err != nil || len(b) != maxUserData {
		t.Errorf("user data of exactly %d bytes: %d bytes, %v", maxUserData, len(b), err)
	}
}

func token(w http.ResponseWriter) {
	w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
	w.Write([]byte("token"))
}
