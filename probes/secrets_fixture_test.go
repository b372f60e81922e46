//go:build unix

package probes

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

var (
	detOnce sync.Once
	det     *secrets.Detector
	detErr  error
)

// testDetector is built once per test binary, as the agent builds it once per process.
func testDetector(t testing.TB) *secrets.Detector {
	t.Helper()
	detOnce.Do(func() { det, detErr = secrets.New() })
	if detErr != nil {
		t.Fatal(detErr)
	}
	return det
}

// fakeIMDS serves the token flow (PUT /latest/api/token, then GETs with the token), the
// identity document and user data (nil: 404). A GET without the token is refused, as with
// IMDSv2 required.
func fakeIMDS(t testing.TB, instanceID string, userData []byte) *httptest.Server {
	t.Helper()
	const token = "fake-imds-token"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest/api/token" {
			if r.Method != http.MethodPut {
				http.Error(w, "", http.StatusMethodNotAllowed)
				return
			}
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
			w.Write([]byte(token))
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != token {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/latest/dynamic/instance-identity/document":
			json.NewEncoder(w).Encode(map[string]string{"instanceId": instanceID, "accountId": "123456789012", "region": "eu-west-1", "imageId": "ami-0123456789abcdef0"})
		case "/latest/user-data":
			if userData == nil {
				http.NotFound(w, r)
				return
			}
			w.Write(userData)
		case "/latest/meta-data/services/partition":
			w.Write([]byte("aws"))
		case "/latest/meta-data/services/domain":
			w.Write([]byte("amazonaws.com"))
		case "/latest/meta-data/hostname":
			w.Write([]byte("ip-10-0-0-1.eu-west-1.compute.internal"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// secretsEnv is a probe environment over root (and proc, "" for none) with IMDS at endpoint.
func secretsEnv(t testing.TB, root, proc, endpoint string) *Env {
	t.Helper()
	fsys, err := hostfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	c := metadata.New(metadata.Options{Endpoint: endpoint, Timeout: 2 * time.Second})
	id := metadata.Identity{Reason: "not on EC2: test without IMDS"}
	if endpoint != testenv.Closed {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		id = c.Identity(ctx)
	}
	return &Env{
		Root: root, FS: fsys, Proc: proc, IMDS: c, Identity: id,
		Now: time.Now, Log: slog.New(slog.DiscardHandler),
		HTTPTimeout: 2 * time.Second, DialTimeout: time.Second,
		Secrets: testDetector(t), FingerprintKey: []byte("test-fingerprint-key"),
	}
}

// entry is one node of a fixture tree: a file (with mode and owner), a symlink, a FIFO or a dir.
type entry struct {
	path    string // inside the root
	content string
	mode    os.FileMode // default 0644 (files), 0755 (dirs)
	uid     int         // owner when > 0 (needs root); else as created
	link    string      // a symlink to this target
	fifo    bool
	dir     bool
}

// buildTree creates the entries under root at run time (git keeps no modes, owners, FIFOs or
// links). Owners need root; callers skip owner-dependent assertions otherwise.
func buildTree(t testing.TB, root string, entries []entry) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(root, filepath.FromSlash(e.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case e.dir:
			mode := e.mode
			if mode == 0 {
				mode = 0o755
			}
			if err := os.MkdirAll(p, mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, mode)
		case e.link != "":
			if err := os.Symlink(e.link, p); err != nil {
				t.Fatal(err)
			}
		case e.fifo:
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			mode := e.mode
			if mode == 0 {
				mode = 0o644
			}
			if err := os.WriteFile(p, []byte(e.content), mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
		if e.uid > 0 && os.Geteuid() == 0 && e.link == "" {
			if err := os.Lchown(p, e.uid, e.uid); err != nil {
				t.Fatal(err)
			}
		}
	}
}
