package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/ec2sec/ec2sec/probes"
)

// Exit codes of `ec2sec scan`, as the contract fixes them.
const (
	ExitOK        = 0 // the scan ran and nothing reached --fail-on
	ExitFailOn    = 1 // a FAILED result reached --fail-on
	ExitUsage     = 2 // bad usage or config
	ExitNoScan    = 3 // the scan could not run at all
	defaultProcfs = "/proc"
)

// ScanCommand is `ec2sec scan` after flag parsing.
type ScanCommand struct {
	Root       string
	Proc       string // "" = the default for Root
	ProcSet    bool   // --proc given explicitly (even as "")
	Probes     []string
	Format     string // "" = table on a terminal, else json
	Output     string // "" = stdout
	FailOn     string // "" or "none" = never
	ConfigPath string
	Report     bool // --report: also deliver to CloudWatch Logs and Security Hub

	Stdout, Stderr io.Writer
	// IsTerminal tells whether w is a terminal (decides the default format and colour).
	IsTerminal  func(w io.Writer) bool
	ScanOptions ScanOptions // for tests: IMDS, Now, Dial, Resolver
	Reporter    ReporterOptions
}

// Run executes the scan command and returns its exit code. Messages go to Stderr.
func (c ScanCommand) Run(ctx context.Context) int {
	usage := func(err error) int {
		fmt.Fprintf(c.Stderr, "ec2sec scan: %v\n", err)
		return ExitUsage
	}
	var failOn probes.Severity
	if c.FailOn != "" && !strings.EqualFold(c.FailOn, "none") {
		s, err := probes.ParseSeverity(c.FailOn)
		if err != nil {
			return usage(fmt.Errorf("--fail-on: %w", err))
		}
		failOn = s
	}
	if c.Format != "" && !slices.Contains(Formats, c.Format) {
		return usage(fmt.Errorf("--format: unknown format %q (want %s)", c.Format, strings.Join(Formats, ", ")))
	}
	avail := c.ScanOptions.Available
	if avail == nil {
		avail = probes.All()
	}
	if _, err := probes.Select(avail, c.Probes); err != nil {
		return usage(fmt.Errorf("--probes: %w", err))
	}
	cfg, err := LoadConfig(c.ConfigPath)
	if err != nil {
		return usage(err)
	}
	root, proc, offline := scanTarget(c.Root, c.Proc, c.ProcSet)

	out := c.Stdout
	var file *os.File
	if c.Output != "" && c.Output != "-" {
		file, err = os.OpenFile(c.Output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			fmt.Fprintf(c.Stderr, "ec2sec scan: --output: %v\n", err)
			return ExitNoScan
		}
		defer file.Close()
		out = file
	}
	tty := c.IsTerminal != nil && c.IsTerminal(out)
	format := c.Format
	if format == "" {
		format = "json"
		if tty {
			format = "table"
		}
	}

	o := c.ScanOptions
	o.Root, o.Proc, o.Offline, o.Probes, o.Config = root, proc, offline, c.Probes, cfg
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	limitMemory()
	report, err := Scan(ctx, o)
	if err != nil {
		fmt.Fprintf(c.Stderr, "ec2sec scan: %v\n", err)
		return ExitNoScan
	}
	if err := Write(out, report, format, tty && os.Getenv("NO_COLOR") == ""); err != nil {
		fmt.Fprintf(c.Stderr, "ec2sec scan: write report: %v\n", err)
		return ExitNoScan
	}
	if file != nil {
		if err := file.Close(); err != nil {
			fmt.Fprintf(c.Stderr, "ec2sec scan: write %s: %v\n", c.Output, err)
			return ExitNoScan
		}
	}
	if format == "asff" {
		if ok, why := hubHost(report).CanImport(); !ok {
			fmt.Fprintf(c.Stderr, "ec2sec scan: warning: the ASFF findings lack account and region: %s\n", why)
		}
	}
	if c.Report && !c.deliver(ctx, cfg, report, o.Log) {
		return ExitNoScan
	}
	if report.Reaches(failOn) {
		return ExitFailOn
	}
	return ExitOK
}
