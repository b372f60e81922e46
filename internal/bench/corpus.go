package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// The secret corpus: user-data samples with fake secrets and clean look-alikes, and where
// each secret is. Two sets: probes/testdata/userdata (make_corpus.py: encodings, MIME,
// Windows) and probes/secrets/testdata/shapes (make_shapes.py: issue 17's shapes, each
// sample labelled with its shape). The probes/secrets tests and `make bench` score a detector
// and the gitleaks CLI on it with the same code, so BENCHMARKS.md and the tests agree.

// Expected is one secret a sample holds: the decoding chain and 1-based line of its finding,
// and substrings by which a gitleaks CLI finding is matched to it.
type Expected struct {
	Part  string   `json:"part"`
	Line  int      `json:"line"`
	Match []string `json:"match"`
}

// Sample is one corpus file.
type Sample struct {
	Dir, Name string
	Shape     string
	Secrets   []Expected // none: a clean sample
}

// Path is the sample's file.
func (s Sample) Path() string { return filepath.Join(s.Dir, s.Name) }

// earlierShape labels the samples of make_corpus.py, which have no shape of their own.
const earlierShape = "encodings, MIME, Windows (probes/testdata/userdata)"

// CorpusDirs are the corpus directories under the repository root.
var CorpusDirs = []string{"probes/testdata/userdata", "probes/secrets/testdata/shapes"}

// LoadCorpus reads both sets' manifests under the repository root repo.
func LoadCorpus(repo string) ([]Sample, error) {
	var out []Sample
	b, err := os.ReadFile(filepath.Join(repo, "probes/testdata/userdata-manifest.json"))
	if err != nil {
		return nil, err
	}
	var earlier map[string][]Expected
	if err := json.Unmarshal(b, &earlier); err != nil {
		return nil, fmt.Errorf("userdata-manifest.json: %w", err)
	}
	for name, exp := range earlier {
		out = append(out, Sample{Dir: filepath.Join(repo, CorpusDirs[0]), Name: name, Shape: earlierShape, Secrets: exp})
	}
	b, err = os.ReadFile(filepath.Join(repo, "probes/secrets/testdata/shapes.json"))
	if err != nil {
		return nil, err
	}
	var shapes map[string]struct {
		Shape   string     `json:"shape"`
		Secrets []Expected `json:"secrets"`
	}
	if err := json.Unmarshal(b, &shapes); err != nil {
		return nil, fmt.Errorf("shapes.json: %w", err)
	}
	for name, s := range shapes {
		out = append(out, Sample{Dir: filepath.Join(repo, CorpusDirs[1]), Name: name, Shape: s.Shape, Secrets: s.Secrets})
	}
	slices.SortFunc(out, func(a, b Sample) int { return cmp.Compare(a.Path(), b.Path()) })
	return out, nil
}

// Found is a detector's finding, where it is.
type Found struct {
	Part string
	Line int
	Rule string
}

// GitleaksFinding is one finding of the gitleaks CLI's JSON report.
type GitleaksFinding struct {
	File, RuleID, Secret, Match string
	StartLine                   int
}

// Score counts, for one shape (or all), what a detector found of the expected secrets and
// what it found that is none (false positives), on clean samples and on the others.
type Score struct {
	Shape                               string
	Samples, Clean, Secrets             int
	Found, FPClean, FPOther             int
	Missed, FalsePositives              []string // "sample part:line (rule)", for test logs
	GitleaksFound, GLFPClean, GLFPOther int
}

// Recall is Found / Secrets (1 with no secrets).
func (s Score) Recall() float64 {
	if s.Secrets == 0 {
		return 1
	}
	return float64(s.Found) / float64(s.Secrets)
}

// GitleaksRecall is GitleaksFound / Secrets.
func (s Score) GitleaksRecall() float64 {
	if s.Secrets == 0 {
		return 1
	}
	return float64(s.GitleaksFound) / float64(s.Secrets)
}

// ScoreCorpus scores scan (a detector's findings for a sample's bytes) and, when gl is not
// nil, the gitleaks CLI's findings, per shape; the last Score is the total ("all shapes").
// A finding matches an expected secret at the same part and line; a gitleaks finding
// matches when its secret or match holds one of the expected substrings (the CLI decodes
// nothing, so lines and parts are not comparable).
func ScoreCorpus(samples []Sample, scan func([]byte) ([]Found, error), gl []GitleaksFinding) ([]Score, error) {
	byShape := map[string]*Score{}
	var order []string
	total := &Score{Shape: "all shapes"}
	for _, smp := range samples {
		raw, err := os.ReadFile(smp.Path())
		if err != nil {
			return nil, err
		}
		found, err := scan(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", smp.Name, err)
		}
		s := byShape[smp.Shape]
		if s == nil {
			s = &Score{Shape: smp.Shape}
			byShape[smp.Shape] = s
			order = append(order, smp.Shape)
		}
		var mine []GitleaksFinding
		for _, f := range gl {
			if filepath.Base(f.File) == smp.Name && filepath.Base(filepath.Dir(f.File)) == filepath.Base(smp.Dir) {
				mine = append(mine, f)
			}
		}
		for _, sc := range []*Score{s, total} {
			scoreSample(sc, smp, found, mine)
		}
	}
	slices.Sort(order)
	out := make([]Score, 0, len(order)+1)
	for _, sh := range order {
		out = append(out, *byShape[sh])
	}
	return append(out, *total), nil
}

func scoreSample(s *Score, smp Sample, found []Found, gl []GitleaksFinding) {
	s.Samples++
	clean := len(smp.Secrets) == 0
	if clean {
		s.Clean++
	}
	s.Secrets += len(smp.Secrets)
	hit := make([]bool, len(found))
	for _, e := range smp.Secrets {
		i := slices.IndexFunc(found, func(f Found) bool { return f.Part == e.Part && f.Line == e.Line })
		if i < 0 {
			s.Missed = append(s.Missed, fmt.Sprintf("%s %s:%d", smp.Name, e.Part, e.Line))
			continue
		}
		s.Found++
		hit[i] = true
	}
	for i, f := range found {
		if hit[i] {
			continue
		}
		s.FalsePositives = append(s.FalsePositives, fmt.Sprintf("%s %s:%d (%s)", smp.Name, f.Part, f.Line, f.Rule))
		if clean {
			s.FPClean++
		} else {
			s.FPOther++
		}
	}
	used := make([]bool, len(gl))
	for _, e := range smp.Secrets {
		ok := false
		for i, f := range gl {
			for _, m := range e.Match {
				if strings.Contains(f.Secret, m) || strings.Contains(m, f.Secret) || strings.Contains(f.Match, m) {
					used[i], ok = true, true
				}
			}
		}
		if ok {
			s.GitleaksFound++
		}
	}
	for i := range gl {
		if !used[i] {
			if clean {
				s.GLFPClean++
			} else {
				s.GLFPOther++
			}
		}
	}
}

// RunGitleaks runs the gitleaks CLI (bin) over the corpus directories (under repo) with its
// default config and returns its findings; env is the command's environment.
func RunGitleaks(bin, repo, tmp string, env []string) ([]GitleaksFinding, error) {
	var all []GitleaksFinding
	for i, dir := range CorpusDirs {
		report := filepath.Join(tmp, fmt.Sprintf("gitleaks-corpus-%d.json", i))
		cmd := exec.Command(bin, "dir", filepath.Join(repo, dir), "--report-format", "json", "--report-path", report,
			"--no-banner", "--exit-code", "0", "--log-level", "error")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("gitleaks: %v\n%s", err, out)
		}
		b, err := os.ReadFile(report)
		if err != nil {
			return nil, err
		}
		var fs []GitleaksFinding
		if err := json.Unmarshal(b, &fs); err != nil {
			return nil, fmt.Errorf("gitleaks report: %w", err)
		}
		all = append(all, fs...)
	}
	return all, nil
}

// CorpusMarkdown renders the per-shape table for BENCHMARKS.md.
func CorpusMarkdown(scores []Score) string {
	var b strings.Builder
	b.WriteString("\n## Recall per shape: ec2sec against the gitleaks CLI\n\n")
	b.WriteString("The secret corpus (`internal/bench/corpus.go`): `probes/testdata/userdata` (make_corpus.py) and\n")
	b.WriteString("`probes/secrets/testdata/shapes` (make_shapes.py: issue 17's shapes, with a clean look-alike\n")
	b.WriteString("for each idiom), every secret fake. ec2sec: `probes/secrets` as the userdata probe runs it\n")
	b.WriteString("(decoded), a finding counted at the expected part and line. gitleaks: `gitleaks dir` on the same\n")
	b.WriteString("directories, default config, counted when its finding holds the secret at any line. A false\n")
	b.WriteString("positive is a finding that matches no expected secret. See docs/secrets.md.\n\n")
	b.WriteString("| shape | samples (clean) | secrets | ec2sec found | recall | FP clean / other | gitleaks found | recall | FP clean / other |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range scores {
		name := s.Shape
		if name == "all shapes" {
			name = "**all shapes**"
		}
		fmt.Fprintf(&b, "| %s | %d (%d) | %d | %d | %.1f %% | %d / %d | %d | %.1f %% | %d / %d |\n", name, s.Samples, s.Clean, s.Secrets,
			s.Found, 100*s.Recall(), s.FPClean, s.FPOther, s.GitleaksFound, 100*s.GitleaksRecall(), s.GLFPClean, s.GLFPOther)
	}
	return b.String()
}
