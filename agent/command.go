package agent

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ec2sec/ec2sec/probes"
)

// Exit codes of `ec2sec scan`, fixed for scripts (README, docs/json.md).
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
	// OutputMode is the mode of the --output file (0 = 0600). The file is written to a temp
	// file beside it and renamed over it: never through a symlink, never keeping the mode of
	// a file someone planted there.
	OutputMode fs.FileMode

	Stdout, Stderr io.Writer
	// IsTerminal tells whether w is a terminal (decides the default format and colour).
	IsTerminal  func(w io.Writer) bool
	ScanOptions ScanOptions // for tests: IMDS, Now, Dial, Resolver
	Reporter    ReporterOptions
}

// Run executes the scan command and returns its exit code. Messages go to Stderr.
//
// The steps: check the flags, load the config, open --output, pick the format, scan, write
// the report, deliver it (--report), and decide the exit code (--fail-on).
func (c ScanCommand) Run(ctx context.Context) int {
	failOn, err := c.checkFlags()
	if err != nil {
		return c.usage(err)
	}
	cfg, err := LoadConfig(c.ConfigPath)
	if err != nil {
		return c.usage(err)
	}
	out, file, err := c.openOutput()
	if err != nil {
		fmt.Fprintf(c.Stderr, "ec2sec scan: --output: %v\n", err)
		return ExitNoScan
	}
	if file != nil {
		defer file.abort()
	}
	tty := c.IsTerminal != nil && c.IsTerminal(out)
	format := c.format(tty)

	o := c.scanOptions(cfg)
	limitMemory()
	report, err := Scan(ctx, o)
	if err != nil {
		fmt.Fprintf(c.Stderr, "ec2sec scan: %v\n", err)
		return ExitNoScan
	}
	if !c.writeReport(out, file, report, format, tty) {
		return ExitNoScan
	}
	if c.Report && !c.deliver(ctx, cfg, report, o.Log) {
		return ExitNoScan
	}
	if report.Reaches(failOn) {
		return ExitFailOn
	}
	return ExitOK
}

// usage says what is wrong with the command line, and is the exit code for it.
func (c ScanCommand) usage(err error) int {
	fmt.Fprintf(c.Stderr, "ec2sec scan: %v\n", err)
	return ExitUsage
}

// checkFlags checks --fail-on, --format and --probes before anything runs, and returns the
// --fail-on severity (unset: never).
func (c ScanCommand) checkFlags() (probes.Severity, error) {
	var failOn probes.Severity
	if c.FailOn != "" && !strings.EqualFold(c.FailOn, "none") {
		s, err := probes.ParseSeverity(c.FailOn)
		if err != nil {
			return 0, fmt.Errorf("--fail-on: %w", err)
		}
		failOn = s
	}
	if c.Format != "" && !slices.Contains(Formats, c.Format) {
		return 0, fmt.Errorf("--format: unknown format %q (want %s)", c.Format, strings.Join(Formats, ", "))
	}
	avail := c.ScanOptions.Available
	if avail == nil {
		avail = probes.All()
	}
	if _, err := probes.Select(avail, c.Probes); err != nil {
		return 0, fmt.Errorf("--probes: %w", err)
	}
	return failOn, nil
}

// openOutput returns where the report goes: Stdout, or the --output file (nil for Stdout),
// written in place only when complete (outputFile).
func (c ScanCommand) openOutput() (io.Writer, *outputFile, error) {
	if c.Output == "" || c.Output == "-" {
		return c.Stdout, nil, nil
	}
	file, err := createOutput(c.Output, c.OutputMode)
	if err != nil {
		return nil, nil, err
	}
	return file.f, file, nil
}

// format is --format, or by default a table on a terminal and JSON elsewhere.
func (c ScanCommand) format(tty bool) string {
	if c.Format != "" {
		return c.Format
	}
	if tty {
		return "table"
	}
	return "json"
}

// scanOptions are the scan's options: the command's ScanOptions with its target, probes and
// config, logging warnings to Stderr unless they log elsewhere.
func (c ScanCommand) scanOptions(cfg Config) ScanOptions {
	root, proc, offline := scanTarget(c.Root, c.Proc, c.ProcSet)
	o := c.ScanOptions
	o.Root, o.Proc, o.Offline, o.Probes, o.Config = root, proc, offline, c.Probes, cfg
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return o
}

// writeReport writes the report in format to out (in colour on a terminal unless NO_COLOR
// is set), puts the --output file in place, and warns when ASFF findings could not be
// imported as they are. false: the report could not be written (said on Stderr).
func (c ScanCommand) writeReport(out io.Writer, file *outputFile, report *Report, format string, tty bool) bool {
	if err := Write(out, report, format, tty && os.Getenv("NO_COLOR") == ""); err != nil {
		fmt.Fprintf(c.Stderr, "ec2sec scan: write report: %v\n", err)
		return false
	}
	if file != nil {
		if err := file.commit(); err != nil {
			fmt.Fprintf(c.Stderr, "ec2sec scan: write %s: %v\n", c.Output, err)
			return false
		}
	}
	if format == "asff" {
		if ok, why := hubHost(report).CanImport(); !ok {
			fmt.Fprintf(c.Stderr, "ec2sec scan: warning: the ASFF findings lack account and region: %s\n", why)
		}
	}
	return true
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

// outputFile is --output being written: a temp file (0600, O_EXCL) in the target's directory,
// renamed over the target only when complete. A rename replaces a symlink at the target
// rather than writing through it, and the file gets the asked mode, not a planted file's.
type outputFile struct {
	f      *os.File
	path   string
	mode   fs.FileMode
	closed bool
}

func createOutput(path string, mode fs.FileMode) (*outputFile, error) {
	if mode == 0 {
		mode = 0o600
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, err
	}
	return &outputFile{f: f, path: path, mode: mode}, nil
}

// commit gives the file its mode and puts it in place.
func (o *outputFile) commit() error {
	err := o.f.Chmod(o.mode) // on the descriptor: the umask does not apply
	if err == nil {
		err = o.f.Sync()
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.closed = true
	if err == nil {
		err = os.Rename(o.f.Name(), o.path)
	}
	if err != nil {
		os.Remove(o.f.Name())
	}
	return err
}

// abort removes the temp file of an output that was not committed.
func (o *outputFile) abort() {
	if !o.closed {
		o.f.Close()
		os.Remove(o.f.Name())
	}
}
