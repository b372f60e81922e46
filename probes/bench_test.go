//go:build unix

package probes

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/bench"
	"github.com/ec2sec/ec2sec/internal/fakeimds"
)

// benchEnv is the Env a scan gives each probe, over the large fixture, with IMDS a fake on
// loopback that answers as an instance does (IMDSv2 required, hop limit 1). The clock, the
// resolver and the environment are the agent's own, as in a scan.
func benchEnv(b *testing.B, f *bench.Fixture) *Env {
	b.Helper()
	imds := fakeimds.New(b)
	env := testEnv(b, onRoot(f.Root), withProc(f.Proc), withIMDS(imds.URL), withSecrets())
	env.Now, env.Resolver, env.Getenv = time.Now, &net.Resolver{}, os.Getenv
	env.DialTimeout = time.Second
	env.FingerprintKey = []byte("bench-key")
	return env
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
