//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// refResult is the earlier code's scan timed beside this build's: a machine that got slower
// (a shared, virtualised host) moves every absolute figure, and only the same code measured
// then and now tells the machine's change from the code's.
type refResult struct {
	rev      string
	m        measure
	thenCPU  time.Duration // what that commit's own BENCHMARKS.md said, 0 = unknown
	thenWall time.Duration
	note     string // why there is no measurement, when there is none
}

// refRowRe finds the host-only scan's row in an earlier BENCHMARKS.md: median wall, mean
// wall, median CPU.
var refRowRe = regexp.MustCompile(`(?m)^\| ec2sec scan, all probes but imds and ec2api \(full fixture\) \| ([0-9.]+) ms \| [0-9.]+ ms \| ([0-9.]+) ms \|`)

// refScan builds the ec2sec of rev (from git archive, in tmp) and times its scan with the
// same arguments as this build's host-only scan (args[0] is replaced).
func refScan(repo, tmp, rev string, args, env []string, runs int) refResult {
	res := refResult{rev: rev}
	if rev == "" {
		res.note = "no reference commit given"
		return res
	}
	dir := filepath.Join(tmp, "ref-src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.note = err.Error()
		return res
	}
	tarball := filepath.Join(tmp, "ref.tar")
	if out, err := exec.Command("git", "-C", repo, "archive", "--format=tar", "-o", tarball, rev).CombinedOutput(); err != nil {
		res.note = fmt.Sprintf("git archive %s: %v %s", rev, err, bytes.TrimSpace(out))
		return res
	}
	if out, err := exec.Command("tar", "-xf", tarball, "-C", dir).CombinedOutput(); err != nil {
		res.note = fmt.Sprintf("tar: %v %s", err, bytes.TrimSpace(out))
		return res
	}
	bin := filepath.Join(tmp, "ec2sec-ref")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/ec2sec")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		res.note = fmt.Sprintf("go build of %s: %v: %s", rev, err, lastLines(string(out), 3))
		return res
	}
	refArgs := slices.Clone(args)
	refArgs[0] = bin
	ms, err := timeAll([][]string{refArgs}, env, runs, tmp)
	if err != nil {
		res.note = err.Error()
		return res
	}
	res.m = ms[0]
	res.m.name = "ec2sec at " + rev + " (an earlier full run's code), all probes but imds and ec2api (full fixture)"
	if b, err := exec.Command("git", "-C", repo, "show", rev+":BENCHMARKS.md").Output(); err == nil {
		if m := refRowRe.FindSubmatch(b); m != nil {
			res.thenWall = parseMS(string(m[1]))
			res.thenCPU = parseMS(string(m[2]))
		}
	}
	return res
}

func parseMS(s string) time.Duration {
	d, err := time.ParseDuration(s + "ms")
	if err != nil {
		return 0
	}
	return d
}

// markdown is the reference's paragraph in the Machine section.
func (r refResult) markdown(now measure) string {
	if r.m.runs == 0 {
		return fmt.Sprintf("- reference: not measured (%s).\n", r.note)
	}
	s := fmt.Sprintf("- reference: the code of %s, built and timed here in the same run on the same fixture and probes, took %s of CPU (%s wall) per scan; this build %s (%s wall).",
		r.rev, ms(r.m.medianCPU), ms(r.m.medianWall), ms(now.medianCPU), ms(now.medianWall))
	if r.thenCPU > 0 {
		s += fmt.Sprintf(" When %s was benchmarked, its BENCHMARKS.md said %s of CPU (%s wall): this machine now runs the same code %.1f× slower, so absolute targets measured here today are %.1f× harder than then.",
			r.rev, ms(r.thenCPU), ms(r.thenWall), float64(r.m.medianCPU)/float64(r.thenCPU), float64(r.m.medianCPU)/float64(r.thenCPU))
	}
	return s + "\n"
}
