//go:build unix

package probes

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/bench"
	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// benchEnv is the Env a scan gives each probe, over the large fixture, with IMDS a fake on
// loopback that answers as an instance does (IMDSv2 required, hop limit 1).
func benchEnv(b *testing.B, f *bench.Fixture) *Env {
	b.Helper()
	imds := fakeimds.New(b)
	fsys, err := hostfs.New(f.Root)
	if err != nil {
		b.Fatal(err)
	}
	c := metadata.New(metadata.Options{Endpoint: imds.URL, Timeout: time.Second})
	d := &net.Dialer{}
	return &Env{
		Root: f.Root, FS: fsys, Proc: f.Proc, IMDS: c, Identity: c.Identity(context.Background()),
		Now: time.Now, Log: slog.New(slog.DiscardHandler),
		Dial: d.DialContext, Resolver: &net.Resolver{},
		DialTimeout: time.Second, HTTPTimeout: time.Second,
		Getenv:  os.Getenv,
		Secrets: testDetector(b), FingerprintKey: []byte("bench-key"),
	}
}

// BenchmarkProbe runs each probe once per iteration over the large fixture. The imds
// probe's time is the "imds probe with hop limit 1" figure in BENCHMARKS.md.
func BenchmarkProbe(b *testing.B) {
	size := bench.Full
	if testing.Short() { // make test runs benchmarks once, to keep them working
		size = bench.Small
	}
	f, err := bench.BuildSize(b.TempDir(), size)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range All() {
		b.Run(p.Name(), func(b *testing.B) {
			if p.Name() == "ec2api" {
				// Its cost is the EC2 API's round trips, not work on the host; its tests run
				// it against moto_server.
				b.Skip("needs an EC2 API peer")
			}
			if p.Name() == "imdswatch" {
				// It reads the window the run daemon's watcher keeps (none here); the watcher's
				// own cost is benchcmp's IMDS watcher section.
				b.Skip("needs the run daemon's IMDS watch window")
			}
			env := benchEnv(b, f)
			b.ReportAllocs()
			for b.Loop() {
				rs, err := p.Run(context.Background(), env)
				if err != nil {
					b.Fatal(err)
				}
				if len(rs) == 0 {
					b.Fatal("no results")
				}
			}
		})
	}
}
