package probes

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureRoot writes a host tree: path -> content; a content starting with "->" makes a
// symlink to the rest instead (git keeps no symlinks, so they are made here).
func fixtureRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// testdataFile returns the content of probes/testdata/<name>.
func testdataFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// byCheck returns the results of one check.
func byCheck(rs []Result, check string) []Result {
	var out []Result
	for _, r := range rs {
		if r.Check == check {
			out = append(out, r)
		}
	}
	return out
}

// one returns the single result of check, failing the test otherwise.
func one(t *testing.T, rs []Result, check string) Result {
	t.Helper()
	got := byCheck(rs, check)
	if len(got) != 1 {
		t.Fatalf("%s: want 1 result, got %d: %+v", check, len(got), got)
	}
	return got[0]
}

// evidenceJSON is the evidence as it would be reported, to search for leaks.
func evidenceJSON(t *testing.T, rs []Result) string {
	t.Helper()
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
