package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// The default format follows the output: a table with colour on a terminal, JSON elsewhere;
// NO_COLOR turns the colour off.
func TestScanCommandFormatFollowsTerminal(t *testing.T) {
	s := fakeimds.New(t)
	s.V1 = true
	run := func(tty bool) (string, int) {
		var out, errb bytes.Buffer
		c := ScanCommand{
			Root: t.TempDir(), Proc: t.TempDir(), ProcSet: true, Stdout: &out, Stderr: &errb,
			ConfigPath: writeConfig(t, "state_dir: "+t.TempDir()+"\n", 0o600),
			IsTerminal: func(io.Writer) bool { return tty },
			ScanOptions: ScanOptions{
				Available: []probes.Probe{probes.IMDSProbe{}},
				IMDS:      metadata.New(metadata.Options{Endpoint: s.URL}),
			},
		}
		code := c.Run(context.Background())
		return out.String(), code
	}
	out, code := run(true)
	if code != ExitOK || !strings.Contains(out, "\x1b[1;31mHIGH") || !strings.Contains(out, "FAILED") {
		t.Errorf("terminal: exit %d, want a coloured table:\n%q", code, out)
	}
	t.Setenv("NO_COLOR", "1")
	if out, _ = run(true); strings.Contains(out, "\x1b[") {
		t.Errorf("NO_COLOR: colour codes in %q", out)
	}
	out, _ = run(false)
	if !json.Valid([]byte(out)) {
		t.Errorf("not a terminal: want JSON, got %q", out)
	}
}
