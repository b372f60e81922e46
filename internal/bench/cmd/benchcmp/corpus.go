//go:build linux

package main

import (
	"fmt"

	"github.com/ec2sec/ec2sec/internal/bench"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

// corpusSection scores the secret detector and the gitleaks CLI (bin) on the secret corpus,
// per shape (internal/bench/corpus.go; the probes/secrets tests hold the same numbers to
// their targets), and renders the section of BENCHMARKS.md. It runs no timing: the numbers
// do not depend on the machine.
func corpusSection(repo, gitleaks, tmp string, env []string) (string, error) {
	samples, err := bench.LoadCorpus(repo)
	if err != nil {
		return "", fmt.Errorf("corpus: %w", err)
	}
	det, err := secrets.New()
	if err != nil {
		return "", err
	}
	key := []byte("benchcmp-corpus")
	scan := func(raw []byte) ([]bench.Found, error) {
		var out []bench.Found
		for _, f := range det.ScanInput(raw, key).Findings {
			out = append(out, bench.Found{Part: f.Part, Line: f.Line, Rule: f.Rule})
		}
		return out, nil
	}
	gl, err := bench.RunGitleaks(gitleaks, repo, tmp, env)
	if err != nil {
		return "", err
	}
	scores, err := bench.ScoreCorpus(samples, scan, gl)
	if err != nil {
		return "", err
	}
	return bench.CorpusMarkdown(scores), nil
}
