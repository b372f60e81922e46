package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/imdswatch"
)

// IMDSWatchCommand is `ec2sec imds-watch`: the live view for a person migrating one host to
// IMDSv2. It loads the watcher for Duration (0 = until interrupted), shows the callers as a
// one-screen table that updates on a terminal (caller, kind, count, last seen), and at the
// end prints the table, or with Format "json" one ec2sec/v1 document whose results are the
// imdswatch checks' results for that window. When the watcher cannot load, the checks say
// NOT_AVAILABLE with the reason and the exit code is ExitNoScan.
//
// With Resident it is instead the watcher of systemd/ec2sec-imdswatch.service: it keeps the
// programs loaded until ctx is done (or Duration has passed) and the rolling summary in the
// config's state dir, where the scans read it (runResident).
type IMDSWatchCommand struct {
	Duration   time.Duration
	Format     string // "table" (default) or "json"
	ConfigPath string
	Proc       string // default /proc
	Resident   bool
	Log        *slog.Logger // Resident's log (default: JSON lines on Stderr)

	Stdout, Stderr io.Writer
	IsTerminal     func(w io.Writer) bool
	Getenv         func(string) string // default os.Getenv
	ScanOptions    ScanOptions         // for tests: IMDS
	// load replaces imdswatch.Load in tests (a kernel without the hooks).
	load watchLoader
}

// Run executes the command and returns its exit code.
func (c IMDSWatchCommand) Run(ctx context.Context) int {
	usage := func(err error) int {
		fmt.Fprintf(c.Stderr, "ec2sec imds-watch: %v\n", err)
		return ExitUsage
	}
	if c.Format == "" {
		c.Format = "table"
	}
	if c.Format != "table" && c.Format != "json" {
		return usage(fmt.Errorf("--format: unknown format %q (want table or json)", c.Format))
	}
	if c.Duration < 0 {
		return usage(fmt.Errorf("--duration: %s is negative", c.Duration))
	}
	cfg, err := LoadConfig(c.ConfigPath)
	if err != nil {
		return usage(err)
	}
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if c.Resident {
		if c.Format != "table" {
			return usage(fmt.Errorf("--format: the resident watcher writes the summary to the state dir, not a report"))
		}
		return c.runResident(ctx, cfg, getenv)
	}
	load := c.load
	if load == nil {
		load = loadBPF
	}
	src, closeSrc, loadErr := load(imdswatch.Options{Dests: imdswatch.Dests(getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"))})
	tab := imdswatch.NewTable(nil, nil)
	live := c.Format == "table" && c.IsTerminal != nil && c.IsTerminal(c.Stdout)
	if loadErr == nil {
		var redraw sync.Mutex
		last := time.Time{}
		served := make(chan struct{})
		go func() {
			defer close(served)
			imdswatch.Serve(src, enricher(src, c.Proc), tab, func(imdswatch.Event, imdswatch.Identity) {
				if !live {
					return
				}
				redraw.Lock()
				defer redraw.Unlock()
				if time.Since(last) >= 250*time.Millisecond {
					last = time.Now()
					c.draw(tab.Snapshot(), true)
				}
			})
		}()
		if live {
			c.draw(tab.Snapshot(), true)
		}
		wait := ctx.Done()
		var timer <-chan time.Time
		if c.Duration > 0 {
			t := time.NewTimer(c.Duration)
			defer t.Stop()
			timer = t.C
		}
		var tick <-chan time.Time
		if live { // the header's clock moves while nobody calls IMDS
			t := time.NewTicker(time.Second)
			defer t.Stop()
			tick = t.C
		}
	loop:
		for {
			select {
			case <-wait:
				break loop
			case <-timer:
				break loop
			case <-tick:
				redraw.Lock()
				c.draw(tab.Snapshot(), true)
				redraw.Unlock()
			}
		}
		closeSrc()
		<-served
		tab.Stop()
	}
	sum := tab.Snapshot()
	if loadErr != nil {
		sum = &imdswatch.Summary{Version: imdswatch.SummaryVersion, Unavailable: loadErr.Error()}
		fmt.Fprintf(c.Stderr, "ec2sec imds-watch: %v\n", loadErr)
	}
	if c.Format == "table" {
		if loadErr == nil {
			c.draw(sum, live)
		}
	} else {
		o := c.ScanOptions
		o.Probes, o.Config, o.Root = []string{"imdswatch"}, cfg, "/"
		if o.Proc == "" {
			o.Proc = c.Proc
			if o.Proc == "" {
				o.Proc = defaultProcfs
			}
		}
		o.IMDSWatch = func() (*imdswatch.Summary, error) { return sum, nil }
		if o.Log == nil {
			o.Log = slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		report, err := Scan(sctx, o)
		if err != nil {
			fmt.Fprintf(c.Stderr, "ec2sec imds-watch: %v\n", err)
			return ExitNoScan
		}
		if err := WriteJSON(c.Stdout, report); err != nil {
			fmt.Fprintf(c.Stderr, "ec2sec imds-watch: write report: %v\n", err)
			return ExitNoScan
		}
	}
	if loadErr != nil {
		return ExitNoScan
	}
	return ExitOK
}

// draw writes the callers table; on a terminal it first clears the screen and keeps to one
// screen (the most recent callers).
func (c IMDSWatchCommand) draw(s *imdswatch.Summary, clear bool) {
	var b strings.Builder
	if clear {
		b.WriteString("\x1b[H\x1b[2J")
	}
	now := time.Now()
	fmt.Fprintf(&b, "IMDS callers, watching for %s (%d caller(s)", probes.FormatWindow(s.Observed(now)), len(s.Callers))
	if s.Dropped > 0 {
		fmt.Fprintf(&b, ", %d request(s) lost", s.Dropped)
	}
	b.WriteString(")\n\n")
	callers := slices.Clone(s.Callers)
	slices.SortFunc(callers, func(a, b *imdswatch.Caller) int { return b.LastSeen.Compare(a.LastSeen) })
	if clear && len(callers) > 20 {
		callers = callers[:20]
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CALLER\tUSER\tWHERE\tKIND\tCOUNT\tV1\tCREDS\tLAST SEEN")
	for _, cl := range callers {
		name := cl.Exe
		if name == "" {
			name = cl.Comm
		}
		where := "host"
		switch {
		case cl.Container != "":
			where = fmt.Sprintf("%s %.12s", cl.Runtime, cl.Container)
		case cl.Unit != "":
			where = cl.Unit
		}
		if cl.Netns == "other" {
			where += " (other netns)"
		}
		user := cl.User
		if user == "" {
			user = fmt.Sprint(cl.UID)
		}
		fmt.Fprintf(tw, "%s (%d)\t%s\t%s\t%s\t%d\t%d\t%d\t%s ago\n", name, cl.Pid, user, where, cl.LastKind(),
			cl.Count(), cl.V1, cl.Creds, now.Sub(cl.LastSeen).Round(time.Second))
	}
	tw.Flush()
	io.WriteString(c.Stdout, b.String())
}
