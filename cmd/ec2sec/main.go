// Command ec2sec is the EC2 host security agent. It parses flags and hands over to package
// agent; see `ec2sec help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ec2sec/ec2sec/agent"
	"github.com/ec2sec/ec2sec/agent/service"
)

const usage = `ec2sec: EC2 host security agent

Usage:
  ec2sec scan [flags]     run the probes once and print the results
  ec2sec run [flags]      the agent: scan on a schedule and report (SIGHUP reloads the config)
  ec2sec checks [flags]   print the check catalog (--format table|markdown, --output FILE)
  ec2sec imds-watch       who calls IMDS without a token: a live view (--resident: the watcher service)
  ec2sec service ACTION   install, uninstall, start, stop or status the OS service
  ec2sec version          print version, commit and Go version

Run 'ec2sec scan -h' for the scan flags.
`

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go watchdog(sigs, cancel, stopGrace(os.Args[1:]), os.Stderr, os.Exit)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	signal.Stop(sigs)
	cancel()
	os.Exit(code)
}

// stopGrace is how long a command may take to stop after SIGINT or SIGTERM: the daemon's
// final delivery (20 s, within systemd's TimeoutStopSec=30), a few seconds for the rest.
func stopGrace(args []string) time.Duration {
	if len(args) > 0 && args[0] == "run" && !slices.Contains(args[1:], "--worker") && !slices.Contains(args[1:], "-worker") {
		return 25 * time.Second
	}
	return 5 * time.Second
}

// watchdog cancels the command on the first signal, so it stops cleanly; if it has not
// ended grace later (a system call that does not return: a hung file system, an open the
// kernel does not interrupt), or on a second signal, it exits the process: a signal always
// ends the agent within seconds.
func watchdog(sigs <-chan os.Signal, cancel func(), grace time.Duration, stderr io.Writer, exit func(int)) {
	s := <-sigs
	cancel()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-sigs:
		fmt.Fprintf(stderr, "ec2sec: %v again; exiting now\n", s)
	case <-t.C:
		fmt.Fprintf(stderr, "ec2sec: still running %s after %v; exiting\n", grace, s)
	}
	exit(agent.ExitNoScan)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return agent.ExitUsage
	}
	switch args[0] {
	case "scan":
		return scan(ctx, args[1:], stdout, stderr)
	case "run":
		return runAgent(ctx, args[1:], stdout, stderr)
	case "imds-watch":
		return imdsWatch(ctx, args[1:], stdout, stderr)
	case "checks":
		return checks(args[1:], stdout, stderr)
	case "service":
		if len(args) != 2 {
			fmt.Fprintf(stderr, "usage: ec2sec service %s\n", strings.Join(service.Actions, "|"))
			return agent.ExitUsage
		}
		return service.Command(args[1], stdout, stderr)
	case "version", "--version":
		fmt.Fprint(stdout, agent.VersionInfo())
		return agent.ExitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return agent.ExitOK
	default:
		fmt.Fprintf(stderr, "ec2sec: unknown command %q\n\n%s", args[0], usage)
		return agent.ExitUsage
	}
}

func scan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ec2sec scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := agent.ScanCommand{Stdout: stdout, Stderr: stderr, IsTerminal: isTerminal}
	var probeList string
	fs.StringVar(&c.Root, "root", "/", "read the host's files under `DIR` (a mounted image, a chroot, a fixture tree)")
	fs.StringVar(&c.Proc, "proc", "", "procfs `DIR` for processes and sockets (default /proc when --root is /, else none)")
	fs.StringVar(&probeList, "probes", "", "comma-separated probe `NAMES` to run (default all)")
	fs.StringVar(&c.Format, "format", "", "output `FORMAT`: table, json, asff or sarif (default table on a terminal, else json)")
	fs.StringVar(&c.Output, "output", "", "write the report to `FILE` instead of stdout (a new file, renamed into place)")
	outputMode := fs.String("output-mode", "0600", "permission `MODE` (octal) of the --output file")
	fs.StringVar(&c.FailOn, "fail-on", "none", "exit 1 when a FAILED result has `SEVERITY` or higher (low, medium, high, critical, none)")
	fs.StringVar(&c.ConfigPath, "config", "", "config `FILE` (default "+agent.DefaultConfigPath+" when it exists)")
	fs.BoolVar(&c.Report, "report", false, "also deliver to the configured CloudWatch Logs group and Security Hub")
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	fs.Visit(func(f *flag.Flag) { c.ProcSet = c.ProcSet || f.Name == "proc" })
	m, err := strconv.ParseUint(*outputMode, 8, 32)
	if err != nil || m > 0o777 {
		fmt.Fprintf(stderr, "ec2sec scan: --output-mode %q: want an octal permission such as 0600 or 0640\n", *outputMode)
		return agent.ExitUsage
	}
	c.OutputMode = iofs.FileMode(m)
	for _, p := range strings.Split(probeList, ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.Probes = append(c.Probes, p)
		}
	}
	return c.Run(ctx)
}

// checks is `ec2sec checks`: the catalog as a table, or as markdown (docs/checks.md).
func checks(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ec2sec checks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "table", "output `FORMAT`: table or markdown (docs/checks.md)")
	output := fs.String("output", "", "write the catalog to `FILE` instead of stdout")
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	if *format != "table" && *format != "markdown" {
		fmt.Fprintf(stderr, "ec2sec checks: --format %q: want table or markdown\n", *format)
		return agent.ExitUsage
	}
	var b strings.Builder
	if err := agent.WriteChecks(&b, *format); err != nil {
		fmt.Fprintf(stderr, "ec2sec checks: %v\n", err)
		return agent.ExitNoScan
	}
	if *output == "" {
		if _, err := io.WriteString(stdout, b.String()); err != nil {
			return agent.ExitNoScan
		}
		return agent.ExitOK
	}
	if err := os.WriteFile(*output, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintf(stderr, "ec2sec checks: %v\n", err)
		return agent.ExitNoScan
	}
	return agent.ExitOK
}

// imdsWatch is `ec2sec imds-watch`.
func imdsWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ec2sec imds-watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := agent.IMDSWatchCommand{Stdout: stdout, Stderr: stderr, IsTerminal: isTerminal}
	fs.DurationVar(&c.Duration, "duration", 0, "watch for `D` (e.g. 10m), then print the result (default: until interrupted)")
	fs.StringVar(&c.Format, "format", "table", "output `FORMAT`: table (live on a terminal) or json (an ec2sec/v1 document at the end)")
	fs.StringVar(&c.ConfigPath, "config", "", "config `FILE` (default "+agent.DefaultConfigPath+" when it exists)")
	fs.BoolVar(&c.Resident, "resident", false, "be the watcher of ec2sec-imdswatch.service: keep the programs loaded and the 7-day summary in the state dir, until stopped (or --duration)")
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	return c.Run(ctx)
}

// isTerminal reports whether w is a character device (a terminal), without a dependency.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// runAgent is `ec2sec run`: JSON logs to stderr (journald keeps them), SIGHUP reloads.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ec2sec run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := agent.RunCommand{}
	fs.StringVar(&c.ConfigPath, "config", "", "config `FILE` (default "+agent.DefaultConfigPath+" when it exists)")
	fs.StringVar(&c.Root, "root", "/", "read the host's files under `DIR`")
	fs.StringVar(&c.Proc, "proc", "", "procfs `DIR` (default /proc when --root is /)")
	worker := fs.Bool("worker", false, "internal: one scan cycle or delivery for the agent, asked for on stdin")
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	c.Log = slog.New(slog.NewJSONHandler(stderr, nil))
	if *worker {
		signal.Ignore(syscall.SIGHUP) // reloads are the daemon's; a stray HUP must not kill a scan
		return agent.WorkerCommand{Stdin: os.Stdin, Stdout: stdout, Log: c.Log, Confine: true}.Run(ctx)
	}
	c.Executable, c.WorkerLog = agent.Executable(), stderr
	if c.Executable != "" {
		agent.ShedDaemonPtrace(c.Log) // only the scan worker reads other processes
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	c.Reload = hup
	// Under the Windows SCM, service.Run reports to it and cancels ctx on a stop request.
	code := agent.ExitOK
	err := service.Run(ctx, func(ctx context.Context) error {
		if code = c.Run(ctx); code != agent.ExitOK {
			return fmt.Errorf("exit code %d", code)
		}
		return nil
	})
	if err != nil && code == agent.ExitOK {
		fmt.Fprintf(stderr, "ec2sec run: %v\n", err)
		return agent.ExitNoScan
	}
	return code
}

// parseArgs parses a subcommand's flags, which take no positional arguments. When it returns
// false the command ends with code: ExitOK for -h, ExitUsage for anything else.
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return agent.ExitOK, false
		}
		return agent.ExitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return agent.ExitUsage, false
	}
	return 0, true
}
