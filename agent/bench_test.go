package agent

import (
	"context"
	"os"
	"runtime"
	"testing"

	"github.com/ec2sec/ec2sec/internal/bench"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

// benchFixture builds the large host fixture in a temp dir removed when b ends (a small one
// under -short, as `make test` runs the benchmarks: once, to keep them working).
func benchFixture(b testing.TB) *bench.Fixture {
	b.Helper()
	size := bench.Full
	if testing.Short() {
		size = bench.Small
	}
	f, err := bench.BuildSize(b.TempDir(), size)
	if err != nil {
		b.Fatal(err)
	}
	return f
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

// TestNoGrowthOver100Scans runs scans with one detector, as the daemon does, and fails when
// goroutines or open files grow: a leak there would, over weeks of scans, exhaust the host.
// `make bench` sets EC2SEC_BENCH_FULL=1: 100 scans of the large fixture; otherwise (make
// test, under -race) 10 scans of a small one, the same code paths, so a leak per scan shows.
func TestNoGrowthOver100Scans(t *testing.T) {
	var f *bench.Fixture
	scans := 100
	if os.Getenv("EC2SEC_BENCH_FULL") == "1" {
		var err error
		if f, err = bench.Build(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		if f, err = bench.BuildSize(t.TempDir(), bench.Small); err != nil {
			t.Fatal(err)
		}
		scans = 10
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
	for range scans {
		scan()
	}
	runtime.GC()
	g1, fd1 := runtime.NumGoroutine(), openFDs(t)
	t.Logf("goroutines %d -> %d, open fds %d -> %d over %d scans", g0, g1, fd0, fd1, scans)
	if g1 > g0 {
		t.Errorf("goroutines grew from %d to %d over %d scans", g0, g1, scans)
	}
	if fd1 > fd0 {
		t.Errorf("open file descriptors grew from %d to %d over %d scans", fd0, fd1, scans)
	}
}
