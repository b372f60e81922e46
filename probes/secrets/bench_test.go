package secrets

import (
	"os"
	"testing"

	"github.com/ec2sec/ec2sec/internal/bench"
)

// BenchmarkScanUserData16KB scans one of the benchmark fixture's 16 KB user-data files: the
// same file the gitleaks CLI is timed on in BENCHMARKS.md.
func BenchmarkScanUserData16KB(b *testing.B) {
	f, err := bench.BuildSize(b.TempDir(), bench.Size{Users: 1, Processes: 1})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(f.UserData)
	if err != nil {
		b.Fatal(err)
	}
	d := detector(b)
	key := []byte("bench")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if fs, _ := d.ScanData(raw, key); len(fs) == 0 {
			b.Fatal("nothing found")
		}
	}
}
