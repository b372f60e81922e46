package agent

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ec2sec/ec2sec/probes"
)

// Formats that `scan --format` accepts.
var Formats = []string{"table", "json", "asff", "sarif"}

// Write renders the report in format ("table" or "json") to w. color adds ANSI colours to
// the table (only ever asked for on a terminal).
func Write(w io.Writer, r *Report, format string, color bool) error {
	switch format {
	case "json":
		return WriteJSON(w, r)
	case "table":
		return WriteTable(w, r, color)
	case "asff":
		return WriteASFF(w, r)
	case "sarif":
		return WriteSARIF(w, r)
	default:
		return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats, ", "))
	}
}

// WriteJSON writes the report as one JSON object, schema ec2sec/v1 (docs/json.md).
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

var statusOrder = map[probes.Status]int{probes.Failed: 0, probes.Warning: 1, probes.NotAvailable: 2, probes.Passed: 3}

var statusHeading = map[probes.Status]string{
	probes.Failed: "FAILED", probes.Warning: "WARNING",
	probes.NotAvailable: "NOT AVAILABLE (could not look)", probes.Passed: "PASSED",
}

const (
	ansiReset = "\x1b[0m"
	ansiBold  = "\x1b[1m"
	ansiDim   = "\x1b[2m"
)

var severityColor = map[probes.Severity]string{
	probes.Critical: "\x1b[1;35m", probes.High: "\x1b[1;31m", probes.Medium: "\x1b[33m",
	probes.Low: "\x1b[36m", probes.Informational: "\x1b[2m",
}

// WriteTable writes what a person wants at a terminal: who was scanned, then results grouped
// by status (failures first), most severe first, then a one-line summary.
//
// The steps: the heading (who, where, when, the OS, why IMDS said nothing), the results in
// table order (sortForTable) in columns sized over them all, the summary; the table is built
// in memory and reaches w in one write.
func WriteTable(w io.Writer, r *Report, color bool) error {
	t := &tableWriter{color: color, hostRes: hostResource(r.identity)}
	t.heading(r)
	rs := sortForTable(r.Results)
	t.sizeColumns(rs)
	t.rows(rs)
	t.summary(r.Summary)
	_, err := io.WriteString(w, t.b.String())
	return err
}

// tableWriter is one table being built: the text so far, whether it is coloured, and the
// column widths (set by sizeColumns before rows).
type tableWriter struct {
	b       strings.Builder
	color   bool
	hostRes string // the host's own resource, left blank in the rows (the heading names it)

	wCheck, wRes int // runes in the check and resource columns
}

// paint wraps s in the ANSI code when the table is coloured.
func (t *tableWriter) paint(code, s string) string {
	if !t.color || code == "" {
		return s
	}
	return code + s + ansiReset
}

// heading writes who was scanned, where and when, the OS facts, and off EC2 why IMDS did not
// say who the host is.
func (t *tableWriter) heading(r *Report) {
	// Every field comes from the host or an endpoint (IMDS, an image's /etc/hostname, a
	// process path): each one goes through inert (oneLine does) before it is printed.
	host := oneLine(cmp.Or(r.Host.InstanceID, r.Host.Hostname, "this host"), 120)
	where := []string{}
	for _, s := range []string{r.Host.AccountID, r.Host.Region, r.Host.AMIID} {
		if s != "" {
			where = append(where, oneLine(s, 120))
		}
	}
	fmt.Fprintf(&t.b, "%s %s", t.paint(ansiBold, "ec2sec scan of"), t.paint(ansiBold, host))
	if len(where) > 0 {
		fmt.Fprintf(&t.b, " (%s)", strings.Join(where, ", "))
	}
	fmt.Fprintf(&t.b, " at %s\n", r.ScannedAt.Format("2006-01-02 15:04:05Z07:00"))
	if facts := factsLine(r.Host.Facts); facts != "" {
		fmt.Fprintf(&t.b, "%s\n", t.paint(ansiDim, oneLine(facts, 200)))
	}
	if id := r.identity; !id.OnEC2() && id.Reason != "" {
		fmt.Fprintf(&t.b, "%s\n", t.paint(ansiDim, oneLine(id.Reason, 400)))
	}
}

// sortForTable returns a copy of the results in table order: by status (failures first),
// then most severe first; stable, so the probes' order holds within a tie.
func sortForTable(results []probes.Result) []probes.Result {
	rs := slices.Clone(results)
	slices.SortStableFunc(rs, func(a, b probes.Result) int {
		return cmp.Or(cmp.Compare(statusOrder[a.Status], statusOrder[b.Status]), cmp.Compare(b.Severity, a.Severity))
	})
	return rs
}

// resource is a row's resource cell. The heading names the host, so host-level rows leave
// the resource blank.
func (t *tableWriter) resource(res probes.Result) string {
	if res.Resource == t.hostRes {
		return ""
	}
	return oneLine(res.Resource, 60)
}

// sizeColumns sizes the check and resource columns over all groups, so they line up from one
// group to the next.
func (t *tableWriter) sizeColumns(rs []probes.Result) {
	for _, res := range rs {
		t.wCheck = max(t.wCheck, len([]rune(oneLine(res.Check, 60))))
		t.wRes = max(t.wRes, len([]rune(t.resource(res))))
	}
}

// rows writes one line per result (severity for FAILED and WARNING only, check, resource
// when any row has one, reason) under a heading for each status.
func (t *tableWriter) rows(rs []probes.Result) {
	var last probes.Status
	for i, res := range rs {
		if i == 0 || res.Status != last {
			fmt.Fprintf(&t.b, "\n%s\n", t.paint(ansiBold, statusHeading[res.Status]))
			last = res.Status
		}
		sev := ""
		if res.Status == probes.Failed || res.Status == probes.Warning {
			sev = res.Severity.String()
		}
		// Pad before painting so escape codes do not upset the column widths.
		check := oneLine(res.Check, 60)
		fmt.Fprintf(&t.b, "  %s  %s%s  ", t.paint(severityColor[res.Severity], fmt.Sprintf("%-8s", inert(sev))), check, strings.Repeat(" ", t.wCheck-len([]rune(check))))
		if t.wRes > 0 {
			r := t.resource(res)
			fmt.Fprintf(&t.b, "%s%s  ", r, strings.Repeat(" ", t.wRes-len([]rune(r))))
		}
		fmt.Fprintf(&t.b, "%s\n", oneLine(res.Reason, 400))
	}
}

// summary writes the one-line count of results by status and the scan's duration.
func (t *tableWriter) summary(s Summary) {
	fmt.Fprintf(&t.b, "\n%s failed, %d warning, %d passed, %d not available in %d ms\n",
		t.paint(severityColor[probes.High], fmt.Sprint(s.Failed)), s.Warning, s.Passed, s.NotAvailable, s.DurationMS)
}

// oneLine keeps a table cell on one line, inert (no control character reaches the
// terminal) and at most n runes.
func oneLine(s string, n int) string {
	s = inert(strings.Join(strings.Fields(s), " "))
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// factsLine is the OS facts as one line: "ubuntu 22.04, linux 6.1.0-1 x86_64, booted
// 2026-12-01 08:00:00Z, kvm guest".
func factsLine(f Facts) string {
	var parts []string
	if p := strings.TrimSpace(f.Platform + " " + f.PlatformVersion); p != "" {
		parts = append(parts, p)
	}
	if k := strings.TrimSpace(strings.Join([]string{f.OS, f.KernelVersion, f.Arch}, " ")); k != "" && k != f.OS {
		parts = append(parts, strings.Join(strings.Fields(k), " "))
	}
	if !f.BootTime.IsZero() {
		parts = append(parts, "booted "+f.BootTime.Format("2006-01-02 15:04:05Z07:00"))
	}
	if f.Virtualization != "" {
		parts = append(parts, f.Virtualization)
	}
	return strings.Join(parts, ", ")
}
