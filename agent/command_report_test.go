package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

func TestConfigSpool(t *testing.T) {
	dir := t.TempDir()
	for body, wantErr := range map[string]string{
		"spool: {max_mb: 5}\n":                                 "",
		"spool: {max_mb: 0}\n":                                 "spool.max_mb",
		"spool: {max_bytes: 5}\n":                              "unknown key",
		"cloudwatch_logs: {role_arn: nope}\n":                  "role_arn",
		"cloudwatch_logs: {role_arn: 'arn:aws:iam::1:role/x'}": "",
	} {
		p := filepath.Join(dir, "c.yaml")
		writeCfg(t, p, body)
		cfg, err := LoadConfig(p)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%q: %v", body, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%q: error %v, want %q", body, err, wantErr)
		case wantErr == "" && strings.Contains(body, "max_mb") && cfg.Spool.MaxMB != 5:
			t.Errorf("max_mb = %d", cfg.Spool.MaxMB)
		}
	}
	if DefaultConfig().Spool.MaxMB != 50 {
		t.Error("default spool bound is not 50 MiB")
	}
}

// TestScanFormatsAndReport runs `scan` as the CLI does: --format asff prints the findings
// Security Hub would get, --format sarif a SARIF log, and --report delivers (and, with the
// endpoints down, still exits by the scan's result and keeps the spool).
func TestScanFormatsAndReport(t *testing.T) {
	imds := fakeIMDS(t, "i-0eeeeeeeeeeeeeee5")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "config.yaml")
	writeCfg(t, cfgPath, "state_dir: "+state+"\n")
	run := func(args ScanCommand) (int, []byte, string) {
		var out, errb bytes.Buffer
		args.Stdout, args.Stderr, args.ConfigPath, args.Root = &out, &errb, cfgPath, t.TempDir()
		args.Proc, args.ProcSet = t.TempDir(), true // a live host with no processes visible
		args.ScanOptions = ScanOptions{IMDS: metadata.New(metadata.Options{Endpoint: imds.URL})}
		args.Reporter = ReporterOptions{AWS: fastAWS()}
		return args.Run(context.Background()), out.Bytes(), errb.String()
	}
	code, out, stderr := run(ScanCommand{Format: "asff"})
	if code != ExitOK {
		t.Fatalf("asff: exit %d: %s", code, stderr)
	}
	var fs []map[string]any
	if err := json.Unmarshal(out, &fs); err != nil || len(fs) == 0 {
		t.Fatalf("asff output: %v (%d findings)\n%s", err, len(fs), out)
	}
	// The user data holds planted keys: the userdata probe must find them (so the leak
	// checks below look at findings about secrets) and nothing may carry their values.
	if _, ok := probes.Lookup("userdata-secret"); ok {
		found := false
		for _, f := range fs {
			found = found || f["GeneratorId"] == "ec2sec/userdata-secret"
		}
		if !found {
			t.Errorf("no userdata-secret finding for the planted user data:\n%s", out)
		}
	}
	body, _ := json.Marshal(map[string]any{"Findings": fs})
	awsfake.ValidateBatchImportFindings(t, [][]byte{body})
	assertNoLeak(t, "asff output", out)

	code, out, _ = run(ScanCommand{Format: "sarif"})
	var sl map[string]any
	if code != ExitOK || json.Unmarshal(out, &sl) != nil || sl["version"] != "2.1.0" {
		t.Fatalf("sarif: exit %d\n%s", code, out)
	}

	// Endpoints down (testenv's closed port): exit by --fail-on, results spooled.
	code, _, stderr = run(ScanCommand{Format: "json", Report: true, FailOn: "low"})
	if code != ExitFailOn {
		t.Fatalf("--report with endpoints down: exit %d, want %d: %s", code, ExitFailOn, stderr)
	}
	if !strings.Contains(stderr, "kept in the spool") {
		t.Errorf("stderr does not say the report was kept: %s", stderr)
	}
	entries, _ := os.ReadDir(filepath.Join(state, "spool"))
	if len(entries) == 0 {
		t.Fatal("nothing spooled")
	}
	// Endpoints up: the next --report delivers both scans.
	f := awsfake.New(t)
	useFake(t, f)
	code, _, stderr = run(ScanCommand{Format: "json", Report: true})
	if code != ExitOK || stderr != "" {
		t.Fatalf("--report: exit %d: %s", code, stderr)
	}
	entries, _ = os.ReadDir(filepath.Join(state, "spool"))
	if len(entries) != 0 {
		t.Errorf("spool not emptied: %v", entries)
	}
	summaries := 0
	for _, e := range f.Events("/ec2sec/findings", "i-0eeeeeeeeeeeeeee5") {
		if strings.Contains(e.Message, `"run-summary"`) {
			summaries++
		}
	}
	if summaries != 2 {
		t.Errorf("%d run summaries delivered, want 2", summaries)
	}
	if len(f.Findings()) != len(fs) {
		t.Errorf("%d findings in Security Hub, %d in --format asff", len(f.Findings()), len(fs))
	}
	awsfake.ValidateBatchImportFindings(t, f.Bodies())
	for _, b := range f.AllBodies() {
		assertNoLeak(t, "request body", b)
	}
	assertDirNoLeak(t, state)
	// A state dir that cannot be written: exit 3, said on stderr.
	writeCfg(t, cfgPath, "state_dir: /proc/ec2sec-cannot-exist\n")
	if code, _, stderr = run(ScanCommand{Format: "json", Report: true}); code != ExitNoScan || !strings.Contains(stderr, "--report") {
		t.Errorf("unwritable state dir: exit %d: %s", code, stderr)
	}
}
