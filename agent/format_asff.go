package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/sarif"
	"github.com/ec2sec/ec2sec/probes"
)

// Findings returns the ASFF findings Security Hub gets for this report's FAILED and WARNING
// results when nothing was reported before (`scan --format asff`): the lifecycle's archives
// and refreshes need the state, which only `--report` and `run` keep.
func Findings(r *Report) []asff.Finding {
	h := hubHost(r)
	t := asff.Times{FirstObserved: r.ScannedAt, LastObserved: r.ScannedAt, Created: r.ScannedAt, Updated: r.ScannedAt}
	out := []asff.Finding{}
	for _, res := range r.Results {
		if res.Status == probes.Failed || res.Status == probes.Warning {
			out = append(out, asff.FromResult(res, h, t, asff.Options{AgentVersion: Version()}))
		}
	}
	return out
}

// WriteASFF writes the report's findings as a JSON array of ASFF findings.
func WriteASFF(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(Findings(r))
}

// WriteSARIF writes the report as a SARIF 2.1.0 log.
func WriteSARIF(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(sarif.Build(sarif.Input{
		AgentVersion: Version(),
		ScannedAt:    r.ScannedAt.UTC().Format(time.RFC3339),
		Host:         cmp.Or(r.Host.InstanceID, r.Host.Hostname),
		Results:      r.Results,
	}))
}

// deliver is `scan --report`: spool the report, then try once to deliver the spool. Endpoints
// that are down are not a failure of the scan (what was not delivered stays spooled for the
// next run); a spool that cannot be written is, since nothing would ever be delivered.
func (c ScanCommand) deliver(ctx context.Context, cfg Config, report *Report, log *slog.Logger) bool {
	ro := c.Reporter
	if ro.IMDS == nil {
		ro.IMDS = c.ScanOptions.IMDS // central mode reads the signed identity where the scan read IMDS
	}
	rep, err := NewReporter(cfg, log, ro)
	if err != nil {
		fmt.Fprintf(c.Stderr, "ec2sec scan: --report: %v\n", err)
		return false
	}
	if _, err := rep.Spool(ctx, report); err != nil {
		fmt.Fprintf(c.Stderr, "ec2sec scan: --report: %v\n", err)
		return false
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if st, err := rep.Flush(fctx); err != nil {
		fmt.Fprintf(c.Stderr, "ec2sec scan: --report: not everything was delivered (%d items kept in the spool for the next run): %v\n", sum(st.Pending), err)
	}
	return true
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
