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
//
// The steps: check the flags and load the config (checkFlags; a mistake exits ExitUsage);
// with Resident, hand over to runResident; otherwise load the watcher (loadWatch), watch for
// the window when it loaded (liveWatch.watch), and show what it saw (report).
func (c IMDSWatchCommand) Run(ctx context.Context) int {
	if c.Format == "" {
		c.Format = "table"
	}
	cfg, err := c.checkFlags()
	if err != nil {
		return c.usage(err)
	}
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if c.Resident {
		return c.runResident(ctx, cfg, getenv)
	}
	w := c.loadWatch(getenv)
	if w.loadErr == nil {
		w.watch(ctx)
	}
	return c.report(cfg, w)
}

// usage says what is wrong with the command line and returns ExitUsage.
func (c IMDSWatchCommand) usage(err error) int {
	fmt.Fprintf(c.Stderr, "ec2sec imds-watch: %v\n", err)
	return ExitUsage
}

// checkFlags checks the format and duration, then loads the config (so a bad config is a
// usage error too), then the format of the resident watcher, in that order.
func (c IMDSWatchCommand) checkFlags() (Config, error) {
	if c.Format != "table" && c.Format != "json" {
		return Config{}, fmt.Errorf("--format: unknown format %q (want table or json)", c.Format)
	}
	if c.Duration < 0 {
		return Config{}, fmt.Errorf("--duration: %s is negative", c.Duration)
	}
	cfg, err := LoadConfig(c.ConfigPath)
	if err != nil {
		return Config{}, err
	}
	if c.Resident && c.Format != "table" {
		return Config{}, fmt.Errorf("--format: the resident watcher writes the summary to the state dir, not a report")
	}
	return cfg, nil
}

// liveWatch is one window of imds-watch: the loaded programs (or why they did not load), the
// caller table they fill, and whether that table is redrawn live on a terminal.
type liveWatch struct {
	c        IMDSWatchCommand
	src      imdswatch.Source
	closeSrc func() error
	loadErr  error
	tab      *imdswatch.Table
	live     bool

	redraw sync.Mutex // one draw at a time: an event's or the ticker's
	last   time.Time  // when the table was last drawn
}

// loadWatch loads the watcher's programs (c.load in tests) for the IMDS endpoint the SDK
// would call and makes the table they fill; a load that fails leaves its reason in loadErr.
// The table is live only in table format on a terminal.
func (c IMDSWatchCommand) loadWatch(getenv func(string) string) *liveWatch {
	load := c.load
	if load == nil {
		load = loadBPF
	}
	src, closeSrc, loadErr := load(imdswatch.Options{Dests: imdswatch.Dests(getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"))})
	tab := imdswatch.NewTable(nil, nil)
	live := c.Format == "table" && c.IsTerminal != nil && c.IsTerminal(c.Stdout)
	return &liveWatch{c: c, src: src, closeSrc: closeSrc, loadErr: loadErr, tab: tab, live: live}
}

// watch feeds the loaded programs' events to the table until ctx is done or Duration has
// passed, then closes the programs and stops the table's window. Call it only when the
// programs loaded.
func (w *liveWatch) watch(ctx context.Context) {
	served := w.serve()
	if w.live {
		w.c.draw(w.tab.Snapshot(), true)
	}
	w.wait(ctx)
	w.closeSrc()
	<-served
	w.tab.Stop()
}

// serve feeds the events to the table in the background until the programs are closed, then
// closes the channel it returns. On a terminal an event redraws the table, at most every
// 250 ms.
func (w *liveWatch) serve() <-chan struct{} {
	served := make(chan struct{})
	go func() {
		defer close(served)
		imdswatch.Serve(w.src, enricher(w.src, w.c.Proc), w.tab, func(imdswatch.Event, imdswatch.Identity) {
			if !w.live {
				return
			}
			w.redraw.Lock()
			defer w.redraw.Unlock()
			if time.Since(w.last) >= 250*time.Millisecond {
				w.last = time.Now()
				w.c.draw(w.tab.Snapshot(), true)
			}
		})
	}()
	return served
}

// wait returns when ctx is done or Duration (when set) has passed; on a terminal it redraws
// the table every second meanwhile.
func (w *liveWatch) wait(ctx context.Context) {
	wait := ctx.Done()
	var timer <-chan time.Time
	if w.c.Duration > 0 {
		t := time.NewTimer(w.c.Duration)
		defer t.Stop()
		timer = t.C
	}
	var tick <-chan time.Time
	if w.live { // the header's clock moves while nobody calls IMDS
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-wait:
			return
		case <-timer:
			return
		case <-tick:
			w.redraw.Lock()
			w.last = time.Now() // an event just after need not draw the same table again
			w.c.draw(w.tab.Snapshot(), true)
			w.redraw.Unlock()
		}
	}
}

// summary is what the window saw, or when the programs did not load a summary that says why
// (the checks' NOT_AVAILABLE reason); the reason also goes to Stderr.
func (w *liveWatch) summary() *imdswatch.Summary {
	sum := w.tab.Snapshot()
	if w.loadErr != nil {
		sum = &imdswatch.Summary{Version: imdswatch.SummaryVersion, Unavailable: w.loadErr.Error()}
		fmt.Fprintf(w.c.Stderr, "ec2sec imds-watch: %v\n", w.loadErr)
	}
	return sum
}

// report shows what the window saw: in table format the final table (none when the programs
// did not load), else the JSON document (reportJSON). It returns the exit code: ExitNoScan
// when the programs did not load or the document could not be made.
func (c IMDSWatchCommand) report(cfg Config, w *liveWatch) int {
	sum := w.summary()
	if c.Format == "table" {
		if w.loadErr == nil {
			c.draw(sum, w.live)
		}
	} else if code := c.reportJSON(cfg, sum); code != ExitOK {
		return code
	}
	if w.loadErr != nil {
		return ExitNoScan
	}
	return ExitOK
}

// reportJSON writes the window as one ec2sec/v1 document: a scan of the imdswatch probe alone,
// handed sum. A scan or write that fails is said on Stderr and exits ExitNoScan.
func (c IMDSWatchCommand) reportJSON(cfg Config, sum *imdswatch.Summary) int {
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	report, err := Scan(sctx, c.watchScanOptions(cfg, sum))
	if err != nil {
		fmt.Fprintf(c.Stderr, "ec2sec imds-watch: %v\n", err)
		return ExitNoScan
	}
	if err := WriteJSON(c.Stdout, report); err != nil {
		fmt.Fprintf(c.Stderr, "ec2sec imds-watch: write report: %v\n", err)
		return ExitNoScan
	}
	return ExitOK
}

// watchScanOptions are reportJSON's scan: the imdswatch probe alone on this host, handed sum
// as its window, warnings only on Stderr unless the caller set a log.
func (c IMDSWatchCommand) watchScanOptions(cfg Config, sum *imdswatch.Summary) ScanOptions {
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
	return o
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
