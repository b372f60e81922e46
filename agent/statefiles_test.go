package agent

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/probes"
)

// Everything the agent keeps on disk (fingerprint key, state, spool batches, lock) is 0600 in
// 0700 directories, with endpoints down so the spool is full of undelivered batches.
func TestStateFilesArePrivate(t *testing.T) {
	f := awsfake.New(t)
	useFake(t, f)
	f.Inject("PutLogEvents", awsfake.ServerError, awsfake.ServerError, awsfake.ServerError, awsfake.ServerError)
	f.Inject("BatchImportFindings", awsfake.ServerError, awsfake.ServerError, awsfake.ServerError, awsfake.ServerError)
	cfg := testConfig(t)
	os.MkdirAll(cfg.StateDir, 0o755) // a loose dir left by someone else gets tightened
	if _, err := LoadFingerprintKey(cfg, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := NewReporter(cfg, nil, ReporterOptions{AWS: fastAWS()})
	if err != nil {
		t.Fatal(err)
	}
	id := testIdentity("i-0bbbbbbbbbbbbbbb2")
	r := probes.NewResult("imds-v1-enabled", probes.Failed, "", "IMDSv1 answered")
	if _, err := rep.Spool(context.Background(), synthetic(id, time.Now(), []string{"imds"}, r)); err != nil {
		t.Fatal(err)
	}
	rep.Flush(context.Background())

	files := 0
	filepath.WalkDir(cfg.StateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		switch {
		case d.IsDir() && fi.Mode().Perm() != 0o700:
			t.Errorf("%s: directory mode %v, want 0700", p, fi.Mode().Perm())
		case !d.IsDir() && fi.Mode().Perm() != 0o600:
			t.Errorf("%s: file mode %v, want 0600", p, fi.Mode().Perm())
		case !d.IsDir():
			files++
		}
		return nil
	})
	if files < 3 {
		t.Errorf("only %d files in the state dir: the test did not exercise the spool", files)
	}
}
