package probes

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

// catalogRow is a check as ../shared/CHECKS.md describes it.
type catalogRow struct {
	probe, severity  string
	practices        []int
	cis, securityHub []string
}

// readCatalogDoc parses the markdown tables of CHECKS.md by their header names.
func readCatalogDoc(t *testing.T) map[string]catalogRow {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(), "..", "shared", "CHECKS.md")
	b, err := os.ReadFile(path)
	if err != nil {
		testenv.Missing(t, "the shared check catalog is not beside the repository: "+err.Error())
	}
	rows := map[string]catalogRow{}
	var header []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			header = nil
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header == nil {
			header = cells
			continue
		}
		if strings.HasPrefix(cells[0], "---") {
			continue
		}
		col := func(name string) string {
			i := slices.Index(header, name)
			if i < 0 || i >= len(cells) {
				return ""
			}
			return cells[i]
		}
		r := catalogRow{probe: col("probe"), severity: col("severity")}
		for _, p := range strings.Split(col("practice"), ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
				r.practices = append(r.practices, n)
			}
		}
		for _, part := range strings.Split(col("CIS / Security Hub"), "/") {
			part = strings.TrimSpace(part)
			dst := &r.securityHub
			if strings.HasPrefix(part, "CIS ") {
				dst, part = &r.cis, strings.TrimPrefix(part, "CIS ")
			}
			for _, id := range strings.Split(part, ",") {
				if id = strings.TrimSpace(id); id != "" {
					*dst = append(*dst, id)
				}
			}
		}
		rows[strings.Trim(col("check id"), "`")] = r
	}
	return rows
}

// TestCatalogMatchesChecksDoc keeps the code's catalog in step with ../shared/CHECKS.md for
// every check that exists in code.
func TestCatalogMatchesChecksDoc(t *testing.T) {
	doc := readCatalogDoc(t)
	if len(doc) < 20 {
		t.Fatalf("parsed only %d rows of CHECKS.md", len(doc))
	}
	seen := map[string]bool{}
	for _, c := range Catalog() {
		if seen[c.ID] {
			t.Errorf("%s: twice in the catalog", c.ID)
		}
		seen[c.ID] = true
		d, ok := doc[c.ID]
		if !ok {
			t.Errorf("%s: not in CHECKS.md (a new check needs a row there first)", c.ID)
			continue
		}
		if c.Probe != d.probe || c.Severity.String() != d.severity {
			t.Errorf("%s: code says probe %s severity %s, CHECKS.md %s %s", c.ID, c.Probe, c.Severity, d.probe, d.severity)
		}
		if !slices.Equal(c.Practices, d.practices) || !slices.Equal(c.CIS, d.cis) || !slices.Equal(c.SecurityHub, d.securityHub) {
			t.Errorf("%s: mappings differ: code practices %v CIS %v SH %v; doc %v %v %v", c.ID, c.Practices, c.CIS, c.SecurityHub, d.practices, d.cis, d.securityHub)
		}
		if c.Title == "" || c.Remediation.Text == "" || !strings.HasPrefix(c.Remediation.URL, "https://") {
			t.Errorf("%s: needs a title and a remediation with a URL", c.ID)
		}
	}
}

func TestProbesOwnTheirChecks(t *testing.T) {
	names := map[string]bool{}
	for _, p := range All() {
		if names[p.Name()] {
			t.Errorf("probe %s registered twice", p.Name())
		}
		names[p.Name()] = true
		for _, c := range p.Checks() {
			if c.Probe != p.Name() {
				t.Errorf("check %s names probe %s but belongs to %s", c.ID, c.Probe, p.Name())
			}
		}
	}
}
