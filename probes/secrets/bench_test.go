package secrets

import (
	"fmt"
	"os"
	"strings"
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

// BenchmarkScanCloudConfig16KB scans a 16 KB cloud-config document as user data: its text,
// and its YAML read as cloud-init reads it (cloudconfig.go: write_files decoded, runcmd
// lists joined, passwords), the cost issue 17's reader adds to a scan.
func BenchmarkScanCloudConfig16KB(b *testing.B) {
	doc, _ := cloudDoc()
	var buf strings.Builder
	buf.WriteString(doc)
	for i := 0; buf.Len() < 16<<10; i++ {
		fmt.Fprintf(&buf, "packages_%d:\n  - nginx\n  - [ jq, 1.7 ]\nbootcmd_%d:\n  - [ sh, -c, 'echo %d > /tmp/boot' ]\n", i, i, i)
	}
	raw := []byte(buf.String())
	d := detector(b)
	key := []byte("bench")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if s := d.ScanInput(raw, key); len(s.Findings) == 0 || len(s.Notes) > 0 {
			b.Fatalf("%d findings, notes %q", len(s.Findings), s.Notes)
		}
	}
}

// BenchmarkCloudConfigWorstParse decodes the largest YAML tree the reader parses: just under
// the marks that stop it parsing (2 × maxYAMLNodes), then too many nodes to read.
func BenchmarkCloudConfigWorstParse(b *testing.B) {
	raw := []byte("#cloud-config\npackages:\n" + strings.Repeat("  - a\n", 2*maxYAMLNodes-10))
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if d := Decode(raw); len(d.Notes) != 1 {
			b.Fatalf("notes %q", d.Notes)
		}
	}
}
