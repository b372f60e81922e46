package agent

import (
	"cmp"
	"encoding/json"
	"io"
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
