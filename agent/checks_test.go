package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
)

// TestChecksDocIsCurrent fails when docs/checks.md is not what the code's catalog generates.
func TestChecksDocIsCurrent(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(), "docs", "checks.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != ChecksMarkdown() {
		t.Errorf("docs/checks.md is out of date: run `go generate ./agent`")
	}
}

// TestChecksMarkdownHasEveryColumn: each check's row holds its id, probe, FAILED when,
// severity, raised when, practices and mappings, and each practice is named by its text.
func TestChecksMarkdownHasEveryColumn(t *testing.T) {
	md := ChecksMarkdown()
	lines := strings.Split(md, "\n")
	for _, c := range probes.Catalog() {
		var row string
		for _, l := range lines {
			if strings.HasPrefix(l, "| "+c.ID+" |") {
				row = l
			}
		}
		if row == "" {
			t.Errorf("%s: no row", c.ID)
			continue
		}
		for _, want := range []string{c.Probe, c.FailedWhen, c.Severity.String(), c.RaisedWhen, practiceList(c), mappings(c)} {
			if !strings.Contains(row, cell(want)) {
				t.Errorf("%s: row %q lacks %q", c.ID, row, want)
			}
		}
	}
	for _, p := range probes.Practices {
		if !strings.Contains(md, "| "+p.Text+" |") {
			t.Errorf("practice %d (%s) is not in the table", p.N, p.Text)
		}
	}
	for _, want := range []string{"## Secrets are exposures", "| check id | probe | FAILED when | severity | raised when | practice | CIS / Security Hub |"} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q", want)
		}
	}
}
