package secrets

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ec2sec/ec2sec/internal/bench"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// repoRoot is the repository root, from this package's directory.
const repoRoot = "../.."

// corpusGlob lists the corpus files (both sets).
func corpusGlob() ([]string, error) {
	var all []string
	for _, dir := range bench.CorpusDirs {
		files, err := filepath.Glob(filepath.Join(repoRoot, dir, "*"))
		if err != nil {
			return nil, err
		}
		all = append(all, files...)
	}
	return all, nil
}

var (
	sharedOnce sync.Once
	shared     *Detector
	sharedErr  error
)

// detector builds the detector once for the whole test binary, as the agent does per process.
func detector(t testing.TB) *Detector {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = New() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// corpusScan is how the corpus is scanned: as the userdata probe scans user data.
func corpusScan(d *Detector) func([]byte) ([]bench.Found, error) {
	key := []byte("corpus-test-key")
	return func(raw []byte) ([]bench.Found, error) {
		s := d.ScanInput(raw, key)
		if s.Truncated {
			return nil, fmt.Errorf("truncated")
		}
		var out []bench.Found
		for _, f := range s.Findings {
			out = append(out, bench.Found{Part: f.Part, Line: f.Line, Rule: f.Rule})
		}
		return out, nil
	}
}

// TestCorpus scores the detector on the secret corpus (internal/bench/corpus.go), per shape,
// as BENCHMARKS.md reports it: recall at least 98 %, at most one false positive on the clean
// samples.
func TestCorpus(t *testing.T) {
	samples, err := bench.LoadCorpus(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	scores, err := bench.ScoreCorpus(samples, corpusScan(detector(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scores {
		t.Logf("%-58s %3d samples (%2d clean), %3d secrets: found %3d (recall %5.1f%%), false positives %d on clean samples, %d more",
			s.Shape, s.Samples, s.Clean, s.Secrets, s.Found, 100*s.Recall(), s.FPClean, s.FPOther)
	}
	all := scores[len(scores)-1]
	for _, m := range all.Missed {
		t.Logf("missed: %s", m)
	}
	for _, f := range all.FalsePositives {
		t.Logf("false positive: %s", f)
	}
	if all.Samples < 80 || all.Clean < 25 {
		t.Errorf("corpus too small: %d samples, %d clean", all.Samples, all.Clean)
	}
	if len(scores) < 10 {
		t.Errorf("only %d shapes", len(scores)-1)
	}
	if all.Recall() < 0.98 {
		t.Errorf("recall %.1f%% < 98%%", 100*all.Recall())
	}
	if all.FPClean > 1 {
		t.Errorf("%d false positives on clean samples", all.FPClean)
	}
}

// TestCorpusGitleaksCLI runs the gitleaks CLI on the same corpus, for the comparison in
// BENCHMARKS.md. It asserts only that ec2sec's library use finds at least as much as the CLI
// in every shape.
func TestCorpusGitleaksCLI(t *testing.T) {
	bin := testenv.Tool(t, "gitleaks")
	samples, err := bench.LoadCorpus(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	gl, err := bench.RunGitleaks(bin, repoRoot, t.TempDir(), testenv.Environ())
	if err != nil {
		t.Fatal(err)
	}
	scores, err := bench.ScoreCorpus(samples, corpusScan(detector(t)), gl)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scores {
		t.Logf("%-58s gitleaks CLI: found %3d of %3d (recall %5.1f%%), false positives %d on clean samples, %d more; ec2sec %5.1f%%",
			s.Shape, s.GitleaksFound, s.Secrets, 100*s.GitleaksRecall(), s.GLFPClean, s.GLFPOther, 100*s.Recall())
		if s.Found < s.GitleaksFound {
			t.Errorf("%s: ec2sec found %d, the gitleaks CLI %d", s.Shape, s.Found, s.GitleaksFound)
		}
	}
}
