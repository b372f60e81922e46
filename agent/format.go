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
func WriteTable(w io.Writer, r *Report, color bool) error {
	paint := func(code, s string) string {
		if !color || code == "" {
			return s
		}
		return code + s + ansiReset
	}
	var b strings.Builder
	// Every field comes from the host or an endpoint (IMDS, an image's /etc/hostname, a
	// process path): each one goes through inert (oneLine does) before it is printed.
	host := oneLine(cmp.Or(r.Host.InstanceID, r.Host.Hostname, "this host"), 120)
	where := []string{}
	for _, s := range []string{r.Host.AccountID, r.Host.Region, r.Host.AMIID} {
		if s != "" {
			where = append(where, oneLine(s, 120))
		}
	}
	fmt.Fprintf(&b, "%s %s", paint(ansiBold, "ec2sec scan of"), paint(ansiBold, host))
	if len(where) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(where, ", "))
	}
	fmt.Fprintf(&b, " at %s\n", r.ScannedAt.Format("2006-01-02 15:04:05Z07:00"))
	if facts := factsLine(r.Host.Facts); facts != "" {
		fmt.Fprintf(&b, "%s\n", paint(ansiDim, oneLine(facts, 200)))
	}
	if id := r.identity; !id.OnEC2() && id.Reason != "" {
		fmt.Fprintf(&b, "%s\n", paint(ansiDim, oneLine(id.Reason, 400)))
	}

	rs := slices.Clone(r.Results)
	slices.SortStableFunc(rs, func(a, b probes.Result) int {
		return cmp.Or(cmp.Compare(statusOrder[a.Status], statusOrder[b.Status]), cmp.Compare(b.Severity, a.Severity))
	})
	// The heading names the host, so host-level rows leave the resource blank; columns are
	// sized over all groups so they line up from one group to the next.
	hostRes := hostResource(r.identity)
	resource := func(res probes.Result) string {
		if res.Resource == hostRes {
			return ""
		}
		return oneLine(res.Resource, 60)
	}
	wCheck, wRes := 0, 0
	for _, res := range rs {
		wCheck = max(wCheck, len([]rune(oneLine(res.Check, 60))))
		wRes = max(wRes, len([]rune(resource(res))))
	}
	var last probes.Status
	for i, res := range rs {
		if i == 0 || res.Status != last {
			fmt.Fprintf(&b, "\n%s\n", paint(ansiBold, statusHeading[res.Status]))
			last = res.Status
		}
		sev := ""
		if res.Status == probes.Failed || res.Status == probes.Warning {
			sev = res.Severity.String()
		}
		// Pad before painting so escape codes do not upset the column widths.
		check := oneLine(res.Check, 60)
		fmt.Fprintf(&b, "  %s  %s%s  ", paint(severityColor[res.Severity], fmt.Sprintf("%-8s", inert(sev))), check, strings.Repeat(" ", wCheck-len([]rune(check))))
		if wRes > 0 {
			fmt.Fprintf(&b, "%s%s  ", resource(res), strings.Repeat(" ", wRes-len([]rune(resource(res)))))
		}
		fmt.Fprintf(&b, "%s\n", oneLine(res.Reason, 400))
	}
	s := r.Summary
	fmt.Fprintf(&b, "\n%s failed, %d warning, %d passed, %d not available in %d ms\n",
		paint(severityColor[probes.High], fmt.Sprint(s.Failed)), s.Warning, s.Passed, s.NotAvailable, s.DurationMS)
	_, err := io.WriteString(w, b.String())
	return err
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
