package agent

//go:generate go run ../cmd/ec2sec checks --format markdown --output ../docs/checks.md

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/ec2sec/ec2sec/probes"
)

// WriteChecks prints the check catalog from the code in format "table" (id, probe, default
// severity, practices, mappings and title) or "markdown" (docs/checks.md, every column of the
// catalog).
func WriteChecks(w io.Writer, format string) error {
	switch format {
	case "", "table":
		return writeChecksTable(w)
	case "markdown":
		_, err := io.WriteString(w, ChecksMarkdown())
		return err
	}
	return fmt.Errorf("unknown format %q (want table or markdown)", format)
}

func writeChecksTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tPROBE\tSEVERITY\tPRACTICE\tCIS / SECURITY HUB\tTITLE")
	for _, c := range probes.Catalog() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Probe, c.Severity, practiceList(c), dash(mappings(c)), c.Title)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// practiceList is "4, 12".
func practiceList(c probes.Check) string {
	var ps []string
	for _, p := range c.Practices {
		ps = append(ps, fmt.Sprint(p))
	}
	return strings.Join(ps, ", ")
}

// mappings is "CIS 5.2, 5.3 / EC2.13, EC2.19": CIS AWS Foundations controls, then Security
// Hub controls.
func mappings(c probes.Check) string {
	var parts []string
	if len(c.CIS) > 0 {
		parts = append(parts, "CIS "+strings.Join(c.CIS, ", "))
	}
	if len(c.SecurityHub) > 0 {
		parts = append(parts, strings.Join(c.SecurityHub, ", "))
	}
	return strings.Join(parts, " / ")
}

// checkSection is a table of docs/checks.md: the checks of its probes (nil: every probe no
// other section names).
type checkSection struct {
	title, intro string
	probes       []string
}

var checkSections = []checkSection{
	{title: "Host probes (no AWS API permission needed)"},
	{
		title:  "IMDS caller probe (watches the host's calls to IMDS; needs the kernel's cgroup BPF hooks and CAP_BPF)",
		probes: []string{"imdswatch"},
		intro: `Observations come from the resident watcher (` + "`ec2sec-imdswatch.service`" + `, or the ` + "`run`" + `
daemon where it can load it), which keeps a rolling 7-day window in the state dir, or from
` + "`ec2sec imds-watch`" + `; a scan without a window (no watcher, no BPF) is NOT_AVAILABLE with the
reason. One result per caller: executable, user, and the container or systemd unit.`,
	},
	{title: "Instance-view probes (need read-only EC2 API permission; NOT_AVAILABLE without it)", probes: []string{"ec2api"}},
}

const checksIntro = `# Check catalog

<!-- Generated from the code (probes.Catalog) by ` + "`go generate ./agent`" + `, which runs
` + "`ec2sec checks --format markdown`" + `. Do not edit: change the checks in probes/ and regenerate.
TestChecksDocIsCurrent fails when this page is out of date. -->

Every check has a stable id (kebab-case, never renamed once shipped), belongs to one probe,
and maps to the [practices](#practices) below and, where one exists, to a CIS AWS Foundations
control and a Security Hub control. A check returns one result per resource it looked at,
with status PASSED, FAILED, WARNING or NOT_AVAILABLE (the ASFF ` + "`Compliance.Status`" + ` values)
and, when FAILED, the severity below (ASFF labels). A check that cannot look (not on EC2, no
permission, offline image, platform without the feature) returns NOT_AVAILABLE with the
reason, never an error and never a silent PASS.

Severities are defaults; "raised when" says when the agent raises them because of what
another probe saw (correlation is the point of looking from inside). A result's
` + "`compliance`" + ` list names its mappings: ` + "`CIS AWS Foundations 5.6`, `Security Hub EC2.8`, `practice 1`" + `.
` + "`ec2sec checks`" + ` prints the same catalog as a table.

## Practices

The twelve EC2 security practices the checks map to (from the field guide "AWS EC2 Security
Best Practices" by Tarek Cheikh, in its order and with its priorities). A practice without
checks is about a service outside the instance, which a look from inside cannot judge.

| # | practice | priority | checks |
|---|---|---|---|
`

// exposuresSection: %s is the checks the catalog marks Exposure.
const exposuresSection = `## Secrets are exposures

A secret the agent has seen (%s) may have been read while it was
there. When a later scan no longer sees it, its finding stays FAILED and ACTIVE, updated to say
when it was last seen and that the value must be rotated; a person resolves it (Security Hub
workflow) after rotating. Every other check resolves its own findings (PASSED, ARCHIVED).
How long the agent keeps re-asserting an exposure: [reporting](reporting.md#exposures).
`

// ChecksMarkdown is docs/checks.md: the practices, then one table per section with every
// column of the catalog.
func ChecksMarkdown() string {
	cat := probes.Catalog()
	var b strings.Builder
	b.WriteString(checksIntro)
	for _, p := range probes.Practices {
		var ids []string
		for _, c := range cat {
			if slices.Contains(c.Practices, p.N) {
				ids = append(ids, c.ID)
			}
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", p.N, p.Text, p.Priority, dash(strings.Join(ids, ", ")))
	}
	named := map[string]bool{}
	for _, s := range checkSections {
		for _, p := range s.probes {
			named[p] = true
		}
	}
	for i, s := range checkSections {
		var rows []probes.Check
		for _, c := range cat {
			if (s.probes == nil && !named[c.Probe]) || slices.Contains(s.probes, c.Probe) {
				rows = append(rows, c)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n\n", s.title)
		if s.intro != "" {
			b.WriteString(s.intro + "\n\n")
		}
		b.WriteString("| check id | probe | FAILED when | severity | raised when | practice | CIS / Security Hub |\n")
		b.WriteString("|---|---|---|---|---|---|---|\n")
		for _, c := range rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n",
				c.ID, c.Probe, cell(c.FailedWhen), c.Severity, cell(c.RaisedWhen), practiceList(c), cell(mappings(c)))
		}
		if i == 0 {
			var ids []string
			for _, c := range cat {
				if c.Exposure {
					ids = append(ids, c.ID)
				}
			}
			fmt.Fprintf(&b, "\n"+exposuresSection, strings.Join(ids, ", "))
		}
	}
	b.WriteString("\nThe catalog grows: a new check gets a new id and its row comes from the code.\n")
	return b.String()
}

// cell escapes what would end a table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
