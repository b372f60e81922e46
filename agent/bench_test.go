package agent

import (
	"context"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/ec2sec/ec2sec/internal/bench"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

var (
	fixOnce sync.Once
	fix     *bench.Fixture
	fixErr  error
)

// benchFixture builds the large host fixture once per test binary (it takes a second).
func benchFixture(b testing.TB) *bench.Fixture {
	b.Helper()
	fixOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ec2sec-bench-")
		if err != nil {
			fixErr = err
			return
		}
		fix, fixErr = bench.Build(dir)
	})
	if fixErr != nil {
		b.Fatal(fixErr)
	}
	return fix
}

func benchOptions(b testing.TB, f *bench.Fixture) ScanOptions {
	cfg := DefaultConfig()
	cfg.StateDir = b.TempDir()
	return ScanOptions{
		Root: f.Root, Proc: f.Proc, Config: cfg,
		// Off EC2: IMDS disabled, so the scan measures the probes, not a refused connection.
		IMDS: metadata.New(metadata.Options{Getenv: func(k string) string {
			if k == "AWS_EC2_METADATA_DISABLED" {
				return "true"
			}
			return ""
		}}),
	}
}

// BenchmarkScanFixture is one full scan of the large fixture, as `ec2sec scan` does it:
// the secret detector is built inside the scan.
func BenchmarkScanFixture(b *testing.B) {
	f := benchFixture(b)
	o := benchOptions(b, f)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Scan(context.Background(), o); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanFixtureWarm is a full scan with a detector kept across scans, as the daemon
// does it.
func BenchmarkScanFixtureWarm(b *testing.B) {
	f := benchFixture(b)
	o := benchOptions(b, f)
	d, err := secrets.New()
	if err != nil {
		b.Fatal(err)
	}
	o.Secrets = d
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Scan(context.Background(), o); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSecretsNew is the cost of building the secret detector (gitleaks' rules).
func BenchmarkSecretsNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := secrets.New(); err != nil {
			b.Fatal(err)
		}
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(es)
}

// TestNoGrowthOver100Scans runs 100 scans with one detector, as the daemon does, and fails
// when goroutines or open files grow: a leak there would, over weeks of scans, exhaust the
// host. It scans a small fixture (the same code paths, quickly); `make bench` sets
// EC2SEC_BENCH_FULL=1 to scan the large one.
func TestNoGrowthOver100Scans(t *testing.T) {
	var f *bench.Fixture
	if os.Getenv("EC2SEC_BENCH_FULL") == "1" {
		f = benchFixture(t)
	} else {
		var err error
		if f, err = bench.BuildSize(t.TempDir(), bench.Small); err != nil {
			t.Fatal(err)
		}
	}
	o := benchOptions(t, f)
	d, err := secrets.New()
	if err != nil {
		t.Fatal(err)
	}
	o.Secrets = d
	scan := func() {
		if _, err := Scan(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	scan() // first scan: lazily started runtime goroutines and cached files
	runtime.GC()
	g0, fd0 := runtime.NumGoroutine(), openFDs(t)
	for range 100 {
		scan()
	}
	runtime.GC()
	g1, fd1 := runtime.NumGoroutine(), openFDs(t)
	t.Logf("goroutines %d -> %d, open fds %d -> %d over 100 scans", g0, g1, fd0, fd1)
	if g1 > g0 {
		t.Errorf("goroutines grew from %d to %d over 100 scans", g0, g1)
	}
	if fd1 > fd0 {
		t.Errorf("open file descriptors grew from %d to %d over 100 scans", fd0, fd1)
	}
}
