package probes

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// testEnv returns an Env over root (a fixture tree; "" = an empty temp dir) with IMDS at
// endpoint, its identity already looked up as the scan would.
func testEnv(t *testing.T, root, endpoint string) *Env {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	fsys, err := hostfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	c := metadata.New(metadata.Options{Endpoint: endpoint, Timeout: time.Second})
	d := &net.Dialer{}
	return &Env{
		Root: root, FS: fsys, IMDS: c, Identity: c.Identity(context.Background()),
		Now: time.Now, Log: slog.New(slog.DiscardHandler),
		Dial: d.DialContext, Resolver: &net.Resolver{},
		DialTimeout: time.Second, HTTPTimeout: time.Second,
	}
}

// checkIndex indexes results by check id, failing on duplicates (for probes that report one
// result per check).
func checkIndex(t *testing.T, rs []Result) map[string]Result {
	t.Helper()
	m := map[string]Result{}
	for _, r := range rs {
		if _, dup := m[r.Check]; dup {
			t.Fatalf("two results for %s", r.Check)
		}
		m[r.Check] = r
	}
	return m
}
