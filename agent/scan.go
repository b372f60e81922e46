// Package agent runs scans, loads config, formats reports and (later) delivers them.
package agent

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/imdswatch"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/procfs"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

// ScanOptions say what to scan and how. Zero values take the defaults noted.
type ScanOptions struct {
	Root   string   // default "/"
	Proc   string   // "" = processes not visible; the CLI defaults it to /proc for root "/"
	Probes []string // probe names; empty = all not disabled by config
	Config Config
	// Available is the set of probes to choose from (default probes.All()); tests add their own.
	Available []probes.Probe

	IMDS     *metadata.Client // default: from the environment
	Now      func() time.Time // default time.Now
	Log      *slog.Logger     // default: discard
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	Resolver *net.Resolver
	Getenv   func(string) string // default os.Getenv
	// Secrets is the secret detector; built here when nil and a selected probe needs it. A
	// long-running caller passes one it keeps (building it costs tens of milliseconds).
	Secrets *secrets.Detector
	// FingerprintKey keys secret fingerprints; when nil it is loaded (see LoadFingerprintKey).
	FingerprintKey []byte

	// IMDSWatch hands the imdswatch probe its window; nil = the summary the resident watcher
	// (ec2sec-imdswatch.service, or the run daemon) keeps in Config.StateDir
	// (imdswatch.SummaryFile), as loadWatchSummary reads it.
	IMDSWatch func() (*imdswatch.Summary, error)

	// Offline: Root is an image, not the running host (see probes.Env.Offline). Nothing is
	// asked of IMDS; the host is the image's hostname.
	Offline bool

	portableFS bool // tests: hostfs resolves every name with its userspace walk
	// afterScan, when set, runs once the scan has read what it needs (a worker drops its
	// capabilities there, before it spools and delivers).
	afterScan func()
}

// OfflineReason is why the checks that ask IMDS, the EC2 API or the network are
// NOT_AVAILABLE in a scan of an offline image.
const OfflineReason = "offline image (--root without --proc): IMDS, the EC2 API and the network would describe the instance running the scan, not the image"

// scanTarget applies the defaults of --root and --proc: root "/" is the running host, whose
// procfs is /proc unless one was given (procSet); another root without a procfs is an
// offline image.
func scanTarget(root, proc string, procSet bool) (string, string, bool) {
	if root == "" {
		root = "/"
	}
	if !procSet && proc == "" && root == "/" {
		proc = defaultProcfs
	}
	return root, proc, root != "/" && proc == ""
}

// Scan runs the selected probes once, concurrently, and returns their results. It fails only
// when it cannot run at all (bad root, unknown probe); a probe that fails, times out or panics
// yields NOT_AVAILABLE results instead.
//
// The steps: defaults, the root and procfs, the probes; who the host is (IMDS) and its OS
// facts, asked in the background while the secret detector is prepared; every probe at once,
// IdentityFree ones with at most identityHeadStart of waiting for IMDS; the report.
func Scan(ctx context.Context, o ScanOptions) (*Report, error) {
	o.setDefaults()
	fsys, err := openTarget(o)
	if err != nil {
		return nil, err
	}
	defer fsys.Close() // probes abandoned at their deadline go on by the walk
	selected, err := selectProbes(o)
	if err != nil {
		return nil, err
	}

	start := o.Now()
	idCtx, idCancel := context.WithCancel(ctx)
	defer idCancel()
	host := learnHost(idCtx, o, fsys) // a copy of o: prepareSecrets below fills in o
	if err := prepareSecrets(&o, selected); err != nil {
		idCancel()
		<-host.ready
		return nil, err
	}
	results, runs := runProbes(ctx, o, fsys, selected, host)
	return assembleReport(o, start, host, results, runs), nil
}

// setDefaults fills in what the caller left zero (see ScanOptions). An offline scan gets a
// dialer that refuses every address.
func (o *ScanOptions) setDefaults() {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.IMDS == nil {
		o.IMDS = metadata.New(metadata.Options{})
	}
	if o.Dial == nil {
		d := &net.Dialer{}
		o.Dial = d.DialContext
	}
	if o.Offline {
		// Nothing the network answers describes an image: refused here for every probe,
		// not only for those that know to check Env.Offline.
		o.Dial = func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New(OfflineReason)
		}
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.IMDSWatch == nil && o.Config.StateDir != "" {
		dir := o.Config.StateDir
		o.IMDSWatch = func() (*imdswatch.Summary, error) { return loadWatchSummary(dir) }
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
}

// openTarget opens the root to scan, and checks that the procfs, if one was given, is a
// directory.
func openTarget(o ScanOptions) (*hostfs.FS, error) {
	newFS := hostfs.New
	if o.portableFS {
		newFS = hostfs.NewPortable
	}
	fsys, err := newFS(o.Root)
	if err != nil {
		return nil, err
	}
	if o.Proc != "" {
		if fi, err := os.Stat(o.Proc); err != nil || !fi.IsDir() {
			fsys.Close()
			return nil, fmt.Errorf("procfs %s: not a directory", o.Proc)
		}
	}
	return fsys, nil
}

// selectProbes returns the probes named in o.Probes, or when none is named every available
// probe the config does not disable.
func selectProbes(o ScanOptions) ([]probes.Probe, error) {
	avail := o.Available
	if avail == nil {
		avail = probes.All()
	}
	names := o.Probes
	selected, err := probes.Select(avail, names)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		selected = slices.DeleteFunc(selected, func(p probes.Probe) bool {
			return slices.Contains(o.Config.Probes.Disable, p.Name())
		})
	}
	return selected, nil
}

// hostInfo is who the host is and what it runs, learned in the background while the scan
// prepares. Its other fields are set once ready is closed, and never after.
type hostInfo struct {
	ready chan struct{}
	id    metadata.Identity
	facts Facts
	ec2   func(context.Context) (probes.EC2API, error)
}

// learnHost asks, in the background, who the host is and reads its OS facts. Who the host
// is comes from IMDS: a round trip on EC2, up to the IMDS timeout off it. It is asked while
// the secret detector is built. Probes that never read it (IdentityFree) start without it
// when it is slow; the others wait for the answer (hostInfo.await).
func learnHost(ctx context.Context, o ScanOptions, fsys *hostfs.FS) *hostInfo {
	h := &hostInfo{ready: make(chan struct{})}
	go func() {
		defer close(h.ready)
		if o.Offline {
			h.id = metadata.Identity{Reason: OfflineReason}
		} else {
			h.id = o.IMDS.Identity(ctx)
		}
		if h.id.Hostname == "" {
			h.id.Hostname = localHostname(fsys, o.Root)
		}
		h.ec2 = ec2Factory(o, h.id)
		// The OS facts are read here too, while the detector is built, off the probes' path.
		h.facts = hostFacts(ctx, fsys, o.Root, factsTmp(o.Config.StateDir), procfs.New(o.Proc), !o.Offline)
		o.Log.Debug("identity", "instance_id", h.id.InstanceID, "region", h.id.Region, "reason", h.id.Reason)
	}()
	return h
}

// await holds a probe until the host is known and hands it the identity and the EC2 API.
// An IdentityFree probe (free) waits at most identityHeadStart and is handed nothing.
func (h *hostInfo) await(env *probes.Env, free bool) {
	if free {
		// On EC2, IMDS answers within a few milliseconds: let it, so its round trips
		// do not queue behind host probes that keep every CPU busy (Go's scheduler
		// would look at the network only every 10 ms). Off EC2 it may not answer
		// before its timeout, and these probes need nothing from it.
		t := time.NewTimer(identityHeadStart)
		select {
		case <-h.ready:
		case <-t.C:
		}
		t.Stop()
		return
	}
	<-h.ready
	env.Identity, env.EC2 = h.id, h.ec2
}

// runProbes runs every selected probe at once, each under its own deadline, and returns
// their results (finished with the host's identity) and how each ran, in selection order.
func runProbes(ctx context.Context, o ScanOptions, fsys *hostfs.FS, selected []probes.Probe, host *hostInfo) ([][]probes.Result, []ProbeRun) {
	timeout := o.Config.ProbeTimeout.Duration
	if timeout <= 0 {
		timeout = DefaultConfig().ProbeTimeout.Duration
	}
	var procs *procfs.Table // one process list for all probes of this scan
	if o.Proc != "" {
		procs = procfs.NewTable(o.Proc)
	}
	runs := make([]ProbeRun, len(selected))
	results := make([][]probes.Result, len(selected))
	var wg sync.WaitGroup
	for i, p := range selected {
		env := probeEnv(o, fsys, procs, p)
		free, _ := p.(IdentityFree)
		early := free != nil && free.IdentityFree()
		wg.Go(func() {
			host.await(env, early)
			rs, run := runProbe(ctx, p, env, timeout)
			<-host.ready
			results[i], runs[i] = finish(p, rs, run, host.id), run
		})
	}
	wg.Wait()
	return results, runs
}

// probeEnv is what probe p is handed; the identity and the EC2 API are added when the host
// is known (hostInfo.await).
func probeEnv(o ScanOptions, fsys *hostfs.FS, procs *procfs.Table, p probes.Probe) *probes.Env {
	return &probes.Env{
		Root: o.Root, FS: fsys, Proc: o.Proc, Procs: procs,
		IMDS: o.IMDS, Offline: o.Offline,
		Identity: metadata.Identity{Reason: "the scan had not heard from IMDS yet (a probe marked IdentityFree read the identity)"},
		Now:      o.Now, Log: o.Log.With("probe", p.Name()),
		Dial: o.Dial, Resolver: o.Resolver,
		DialTimeout: 2 * time.Second, HTTPTimeout: o.IMDS.Timeout(),
		Getenv:  o.Getenv,
		Secrets: o.Secrets, FingerprintKey: o.FingerprintKey,
		IMDSWatch: o.IMDSWatch,
	}
}

// assembleReport correlates the probes' results across probes, counts them and dates the
// report. Call it once every probe is done (and so the host is known).
func assembleReport(o ScanOptions, start time.Time, host *hostInfo, results [][]probes.Result, runs []ProbeRun) *Report {
	r := &Report{
		Schema:    Schema,
		ScannedAt: start.UTC().Truncate(time.Second),
		Host:      hostOf(host.id, host.facts),
		Results:   probes.Correlate(slices.Concat(results...)),
		Probes:    runs,
		identity:  host.id,
	}
	for _, res := range r.Results {
		r.Summary.count(res.Status)
	}
	r.Summary.DurationMS = o.Now().Sub(start).Milliseconds()
	return r
}

// identityHeadStart is how long IdentityFree probes wait for IMDS to say who the host is
// before they start anyway: far above IMDS's answer time on EC2, far below its timeout.
const identityHeadStart = 50 * time.Millisecond

// IdentityFree is implemented by probes that never read Env.Identity or Env.EC2 (those
// may hold nothing yet when they start): the scan does not hold them up for an IMDS that is
// slow to answer or absent (off EC2, until its timeout).
type IdentityFree interface {
	IdentityFree() bool
}

// runProbe runs one probe under its own deadline. A probe that ignores its context is
// abandoned at the deadline (its goroutine finishes in the background) so one stuck probe
// never holds up the scan.
func runProbe(ctx context.Context, p probes.Probe, env *probes.Env, timeout time.Duration) ([]probes.Result, ProbeRun) {
	run := ProbeRun{Name: p.Name(), Status: "ok"}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	type outcome struct {
		rs  []probes.Result
		err error
		pan bool
	}
	ch := make(chan outcome, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				// A panic value may quote what the probe was reading; log only what is
				// safe (runtime errors are), and the stack for a bug report.
				msg := fmt.Sprintf("%T", v)
				if re, ok := v.(runtime.Error); ok {
					msg = re.Error()
				}
				env.Log.Error("probe panicked", "panic", msg, "stack", string(debug.Stack()))
				ch <- outcome{err: fmt.Errorf("probe crashed (%s); see the agent log", msg), pan: true}
			}
		}()
		rs, err := p.Run(pctx, env)
		ch <- outcome{rs: rs, err: err}
	}()

	var out outcome
	select {
	case out = <-ch:
	case <-pctx.Done():
		select {
		case out = <-ch: // finished at the deadline: keep what it found
		default:
			out.err = fmt.Errorf("probe timed out after %s", timeout)
			if ctx.Err() != nil {
				out.err = fmt.Errorf("scan cancelled: %w", context.Cause(ctx))
			}
			run.Status = "timeout"
		}
	}
	switch {
	case out.pan:
		run.Status = "panic"
	case out.err != nil && run.Status == "ok":
		if errors.Is(out.err, context.DeadlineExceeded) {
			run.Status = "timeout"
		} else {
			run.Status = "error"
		}
	}
	if out.err != nil {
		run.Error = out.err.Error()
		level := slog.LevelInfo // "not on EC2", "no permission": expected, and in the results
		if run.Status != "error" {
			level = slog.LevelWarn
		}
		env.Log.Log(context.Background(), level, "probe could not look", "status", run.Status, "err", out.err)
		run.DurationMS = time.Since(start).Milliseconds()
		return nil, run
	}
	// Set here, not in a defer: a deferred assignment would come after the return copied run.
	run.DurationMS = time.Since(start).Milliseconds()
	return out.rs, run
}

// finish fills results from the catalog, drops results for checks the probe does not own,
// gives every check of the probe at least one result, and sorts them.
func finish(p probes.Probe, rs []probes.Result, run ProbeRun, id metadata.Identity) []probes.Result {
	checks := p.Checks()
	if run.Error != "" {
		rs = nil
		for _, c := range checks {
			rs = append(rs, probes.NewResult(c.ID, probes.NotAvailable, "", run.Error))
		}
	}
	seen := map[string]bool{}
	out := make([]probes.Result, 0, len(rs)+len(checks))
	for _, r := range rs {
		i := slices.IndexFunc(checks, func(c probes.Check) bool { return c.ID == r.Check })
		if i < 0 {
			continue // a probe bug; the probes' own tests catch it
		}
		seen[r.Check] = true
		out = append(out, fill(r, checks[i], id))
	}
	for _, c := range checks {
		if !seen[c.ID] {
			out = append(out, fill(probes.NewResult(c.ID, probes.NotAvailable, "", "the probe reported nothing for this check"), c, id))
		}
	}
	order := func(check string) int {
		return slices.IndexFunc(checks, func(c probes.Check) bool { return c.ID == check })
	}
	slices.SortStableFunc(out, func(a, b probes.Result) int {
		return cmp.Or(cmp.Compare(order(a.Check), order(b.Check)), cmp.Compare(a.Resource, b.Resource))
	})
	return out
}

func fill(r probes.Result, c probes.Check, id metadata.Identity) probes.Result {
	r.Probe = c.Probe
	r.Title = c.Title
	r.Remediation = c.Remediation
	r.Compliance = c.Compliance()
	switch {
	case r.Status != probes.Failed && r.Status != probes.Warning:
		r.Severity = probes.Informational
	case r.Severity == probes.SeverityUnset:
		r.Severity = c.Severity
	}
	if r.Resource == "" {
		r.Resource = hostResource(id)
	}
	if r.Evidence == nil {
		r.Evidence = map[string]any{}
	}
	r.ID = resultID(id, r)
	return r
}

// hostResource names the host itself: its instance ARN on EC2, else host/<hostname>.
func hostResource(id metadata.Identity) string {
	if arn := id.InstanceARN(); arn != "" {
		return arn
	}
	return "host/" + cmp.Or(id.Hostname, "unknown")
}

// resultID is stable across runs for the same host, check, resource and (for secrets)
// fingerprint, so findings update in place and resolve when they stop being reported.
func resultID(id metadata.Identity, r probes.Result) string {
	host := cmp.Or(id.InstanceID, id.Hostname, "unknown-host")
	fp, _ := r.Evidence[probes.Fingerprint].(string)
	in := host + "\x00" + r.Check + "\x00" + r.Resource + "\x00" + fp
	if r.Key != "" {
		in += "\x00" + r.Key
	}
	h := sha256.Sum256([]byte(in))
	return host + "/" + r.Check + "/" + hex.EncodeToString(h[:8])
}

// localHostname names the host off EC2: the image's /etc/hostname for a --root scan, the
// kernel's hostname for this host.
func localHostname(fsys *hostfs.FS, root string) string {
	if root == "/" {
		if h, err := os.Hostname(); err == nil {
			return h
		}
	}
	b, _, err := fsys.ReadFile("/etc/hostname", 256)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}
