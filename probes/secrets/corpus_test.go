package secrets

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const corpusDir = "../testdata/userdata"

type expected struct {
	Part  string   `json:"part"`
	Line  int      `json:"line"`
	Match []string `json:"match"`
}

func loadManifest(t *testing.T) map[string][]expected {
	t.Helper()
	b, err := os.ReadFile("../testdata/userdata-manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string][]expected
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
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

// corpusScore counts, over the corpus, the expected secrets found, those missed, and findings
// that match no expected secret (false positives), split by clean and secret samples.
type corpusScore struct {
	expected, found, fpClean, fpOther int
	missed                            []string
	fps                               []string
	cleanSamples, samples             int
}

func (s corpusScore) recall() float64 { return float64(s.found) / float64(s.expected) }

func TestCorpus(t *testing.T) {
	d := detector(t)
	key := []byte("corpus-test-key")
	man := loadManifest(t)
	var s corpusScore
	for name, exp := range man {
		raw, err := os.ReadFile(filepath.Join(corpusDir, name))
		if err != nil {
			t.Fatal(err)
		}
		s.samples++
		if len(exp) == 0 {
			s.cleanSamples++
		}
		findings, truncated := d.ScanData(raw, key)
		if truncated {
			t.Errorf("%s: truncated", name)
		}
		s.expected += len(exp)
		hit := make([]bool, len(findings))
		for _, e := range exp {
			i := slices.IndexFunc(findings, func(f Finding) bool { return f.Part == e.Part && f.Line == e.Line })
			if i < 0 {
				s.missed = append(s.missed, fmt.Sprintf("%s %s:%d", name, e.Part, e.Line))
				continue
			}
			s.found++
			hit[i] = true
		}
		for i, f := range findings {
			if hit[i] {
				continue
			}
			s.fps = append(s.fps, fmt.Sprintf("%s %s:%d %s", name, f.Part, f.Line, f.Rule))
			if len(exp) == 0 {
				s.fpClean++
			} else {
				s.fpOther++
			}
		}
	}
	t.Logf("ec2sec: %d samples (%d clean), %d secrets: found %d (recall %.1f%%), false positives %d on clean samples, %d more on the others",
		s.samples, s.cleanSamples, s.expected, s.found, 100*s.recall(), s.fpClean, s.fpOther)
	for _, m := range s.missed {
		t.Logf("missed: %s", m)
	}
	for _, f := range s.fps {
		t.Logf("false positive: %s", f)
	}
	if s.samples < 30 || s.cleanSamples < 10 {
		t.Errorf("corpus too small: %d samples, %d clean", s.samples, s.cleanSamples)
	}
	if s.recall() < 0.95 {
		t.Errorf("recall %.1f%% < 95%%", 100*s.recall())
	}
	if s.fpClean > 0 {
		t.Errorf("%d false positives on clean samples", s.fpClean)
	}
}

// TestCorpusGitleaksCLI runs the gitleaks CLI on the same corpus, for the README's comparison.
// It asserts only that ec2sec's library use finds at least as much as the CLI.
func TestCorpusGitleaksCLI(t *testing.T) {
	bin := testenv.Tool(t, "gitleaks")
	report := filepath.Join(t.TempDir(), "report.json")
	abs, _ := filepath.Abs(corpusDir)
	cmd := exec.Command(bin, "dir", abs, "--report-format", "json", "--report-path", report, "--no-banner", "--exit-code", "0", "--log-level", "error")
	cmd.Env = testenv.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gitleaks: %v\n%s", err, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var gl []struct {
		File, RuleID, Secret, Match string
		StartLine                   int
	}
	if err := json.Unmarshal(b, &gl); err != nil {
		t.Fatal(err)
	}
	man := loadManifest(t)
	var expected, found, fpClean, fpOther int
	for name, exp := range man {
		var mine []int
		for i, f := range gl {
			if filepath.Base(f.File) == name {
				mine = append(mine, i)
			}
		}
		used := map[int]bool{}
		expected += len(exp)
		for _, e := range exp {
			ok := false
			for _, i := range mine {
				for _, m := range e.Match {
					if strings.Contains(gl[i].Secret, m) || strings.Contains(m, gl[i].Secret) || strings.Contains(gl[i].Match, m) {
						used[i], ok = true, true
					}
				}
			}
			if ok {
				found++
			} else {
				t.Logf("gitleaks missed: %s %s:%d", name, e.Part, e.Line)
			}
		}
		for _, i := range mine {
			if !used[i] {
				if len(exp) == 0 {
					fpClean++
				} else {
					fpOther++
				}
				t.Logf("gitleaks false positive: %s:%d %s", name, gl[i].StartLine, gl[i].RuleID)
			}
		}
	}
	t.Logf("gitleaks CLI: %d secrets: found %d (recall %.1f%%), false positives %d on clean samples, %d more on the others",
		expected, found, 100*float64(found)/float64(expected), fpClean, fpOther)
}
