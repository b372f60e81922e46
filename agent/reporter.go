package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/agent/spool"
	"github.com/ec2sec/ec2sec/agent/state"
	"github.com/ec2sec/ec2sec/probes"
	"github.com/ec2sec/ec2sec/probes/metadata"
)

// Reporter takes scan reports to CloudWatch Logs and Security Hub: it diffs each report
// against the lifecycle state, writes what is to be sent to the spool, saves the state, and
// flushes the spool to the sinks. The spool and state live in Config.StateDir; a file lock
// there keeps a daemon and a `scan --report` from sending the same batch at once.
type Reporter struct {
	cfg   Config
	log   *slog.Logger
	spool *spool.Spool
	dir   string
	opts  ReporterOptions

	host     string            // the host key the sinks are for
	id       metadata.Identity // that host's identity
	cw, sh   sink.Sink
	hubIssue string // why Security Hub cannot be reached from this host, if it cannot
}

// ReporterOptions are for tests and the daemon: SDK tuning and sink overrides.
type ReporterOptions struct {
	AWS sink.AWSOptions
	// Sinks, when set, replace the AWS clients (tests with strict fakes use the SDK anyway,
	// through AWS_ENDPOINT_URL_*; this is for unit tests of the lifecycle).
	CloudWatch, SecurityHub sink.Sink
	// IMDS reads the signed instance identity in central mode (default: the standard
	// environment, AWS_EC2_METADATA_SERVICE_ENDPOINT).
	IMDS *metadata.Client
	// LockWait bounds the wait for another ec2sec holding the state lock (default 2m).
	LockWait time.Duration
	// Refresh overrides state.DefaultRefresh, MaxExposures state.DefaultMaxExposures.
	Refresh      time.Duration
	MaxExposures int
	// pause is a test hook at the crash-sensitive points ("spooled": batches written, state
	// not yet saved; "sent": a batch delivered, the spool not yet updated; "respooled": new
	// versions of refused archives written, state not yet saved).
	pause func(point string)
}

func (o ReporterOptions) at(point string) {
	if o.pause != nil {
		o.pause(point)
	}
}

// SpoolStats says what one report put into the spool.
type SpoolStats struct {
	LogEvents     int    `json:"log_events"`
	Findings      int    `json:"findings"`
	Archived      int    `json:"archived"`
	DroppedEvents int    `json:"dropped_events"` // old log events dropped to keep the spool bounded
	HubSkipped    int    `json:"hub_skipped"`    // findings not sent: Security Hub unreachable from this host
	HubIssue      string `json:"hub_issue,omitempty"`
	Superseded    int    `json:"superseded"` // older pending findings replaced by this report's versions
	// Exposures: findings of secrets no longer seen sent again, still FAILED and ACTIVE;
	// Untracked: of those, the ones the state stopped refreshing (past its bound).
	Exposures int `json:"exposures"`
	Untracked int `json:"untracked"`
}

// FlushStats says what one flush delivered.
type FlushStats struct {
	Accepted map[string]int `json:"accepted"`
	Rejected map[string]int `json:"rejected"`
	Pending  map[string]int `json:"pending"` // items left for a later attempt
}

// NewReporter opens the spool under cfg.StateDir.
func NewReporter(cfg Config, log *slog.Logger, o ReporterOptions) (*Reporter, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.LockWait <= 0 {
		o.LockWait = 2 * time.Minute
	}
	if err := privateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	sp, err := spool.Open(filepath.Join(cfg.StateDir, "spool"), int64(cfg.Spool.MaxMB)<<20)
	if err != nil {
		return nil, err
	}
	return &Reporter{cfg: cfg, log: log, spool: sp, dir: cfg.StateDir, opts: o}, nil
}

func (r *Reporter) lock(ctx context.Context) (*spool.Lock, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, r.opts.LockWait, errors.New("timed out"))
	defer cancel()
	return spool.Acquire(ctx, filepath.Join(r.dir, "lock"))
}

var sessionUnsafe = regexp.MustCompile(`[^\w+=,.@-]`)

// target points the reporter at a host: the CloudWatch Logs stream is named after it, and
// whether Security Hub can take its findings depends on what IMDS told. The clients are built
// later, by clients, so a report is spooled even when the SDK config cannot be loaded.
func (r *Reporter) target(id metadata.Identity) {
	key := cmp.Or(id.InstanceID, id.Hostname, "unknown-host")
	if r.host == key {
		return
	}
	r.host, r.id, r.cw, r.sh, r.hubIssue = key, id, r.opts.CloudWatch, r.opts.SecurityHub, ""
	if ok, why := hubHostOf(id).CanImport(); !ok && r.cfg.SecurityHub.Enabled {
		r.hubIssue = why
		r.log.Warn("security hub delivery is not possible from this host; findings are not sent", "reason", why)
	}
}

// hubOK reports whether findings are to be sent at all.
func (r *Reporter) hubOK() bool { return r.cfg.SecurityHub.Enabled && r.hubIssue == "" }

// clients builds the SDK-backed sinks the target needs and does not have yet.
func (r *Reporter) clients(ctx context.Context) error {
	if r.cw == nil && r.cfg.CloudWatchLogs.LogGroup != "" {
		o := r.opts.AWS
		o.Region = cmp.Or(r.cfg.Region, r.id.Region, o.Region)
		cfg, err := sink.LoadAWS(ctx, o)
		if err != nil {
			return err
		}
		if arn := r.cfg.CloudWatchLogs.RoleARN; arn != "" {
			cfg = sink.AssumeRole(cfg, arn, sessionUnsafe.ReplaceAllString(trunc("ec2sec-"+r.host, 64), "-"))
		}
		r.cw = sink.NewCloudWatch(cfg, r.cfg.CloudWatchLogs.LogGroup, r.host, r.log)
	}
	if r.sh == nil && r.hubOK() && r.cfg.SecurityHub.Central() {
		// Central mode: findings go as CloudWatch Logs events to the same stream, with the
		// instance's signed identity; this host never calls Security Hub.
		cw, ok := r.cw.(*sink.CloudWatch)
		if !ok {
			return errors.New("security_hub.mode central needs the CloudWatch Logs sink")
		}
		imds := r.opts.IMDS
		if imds == nil {
			imds = metadata.New(metadata.Options{})
		}
		r.sh = sink.NewCentral(cw, identityProof(imds), r.log)
	}
	if r.sh == nil && r.hubOK() {
		// Findings go to the Security Hub of the instance's own region and account: the
		// product ARN names them, and cross-region aggregation is Security Hub's job.
		o := r.opts.AWS
		o.Region = r.id.Region
		cfg, err := sink.LoadAWS(ctx, o)
		if err != nil {
			return err
		}
		r.sh = sink.NewSecurityHub(cfg, r.log)
	}
	return nil
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// hubHost is the report's host as ASFF names it: identity, image and OS facts.
func hubHost(rep *Report) asff.Host {
	h := hubHostOf(rep.Identity())
	f := rep.Host.Facts
	h.ImageID = rep.Host.AMIID
	h.OS, h.Platform, h.PlatformVersion, h.KernelVersion, h.Arch, h.Virtualization = f.OS, f.Platform, f.PlatformVersion, f.KernelVersion, f.Arch, f.Virtualization
	return h
}

func hubHostOf(id metadata.Identity) asff.Host {
	return asff.Host{AccountID: id.AccountID, Region: id.Region, Partition: id.Partition, InstanceARN: id.InstanceARN(), Hostname: id.Hostname}
}

// Spool diffs the report against the lifecycle state and durably spools what is to be sent:
// a CloudWatch Logs event per new, changed or resolved result plus the run summary, and a
// Security Hub finding per new, changed, refreshed or archived finding. The state is saved
// only after the spool holds the changes, so a crash in between re-sends (idempotently)
// rather than loses.
func (r *Reporter) Spool(ctx context.Context, rep *Report) (SpoolStats, error) {
	var st SpoolStats
	r.target(rep.Identity())
	lk, err := r.lock(ctx)
	if err != nil {
		return st, err
	}
	defer lk.Release()
	s, err := r.openState()
	if err != nil {
		return st, err
	}
	backlog, _, _ := r.spool.Size() // batches of earlier scans still waiting: delivery health
	checks := checkMetricsDue(rep.ScannedAt, s.CheckMetricsAt)
	out, err := r.outgoing(rep, r.diff(s, rep), &st)
	if err != nil {
		return st, err
	}
	st.HubIssue = r.hubIssue
	// Findings first: they are never dropped, and the log batch's room is made after them.
	droppedByFindings, err := r.spool.Put(spool.Findings, out.findings)
	if err != nil {
		return st, err
	}
	findingsSeq := r.spool.Last()
	if r.cfg.CloudWatchLogs.LogGroup != "" {
		if err := r.spoolLogs(rep, out.events, droppedByFindings, backlog, checks, &st); err != nil {
			return st, err
		}
	}
	r.opts.at("spooled")
	if err := r.commitState(s, rep, checks); err != nil {
		return st, err
	}
	if st.HubSkipped > 0 {
		r.log.Warn("findings not sent to security hub", "count", st.HubSkipped, "reason", r.hubIssue)
	}
	if len(out.findings) > 0 {
		st.Superseded = r.supersede(findingsSeq, out.newIDs)
	}
	return st, nil
}

// openState recovers the lifecycle state (recoverState). With no state saved yet, it saves
// an empty one naming the batches already spooled: there is no commit point otherwise, and
// batches this report writes and a crash leaves without the state saved would count as
// committed and be delivered, though the next report diffs from an empty state again and
// never archives what they hold. Call it holding the lock.
func (r *Reporter) openState() (*state.State, error) {
	s := r.recoverState()
	if !s.Exists() {
		s.SpoolSeq = r.spool.Last()
		if err := s.Save(r.statePath()); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// diff applies the report to the lifecycle state and returns what is to be sent. A probe
// that did not run "ok" archives nothing.
func (r *Reporter) diff(s *state.State, rep *Report) []state.Change {
	ok := map[string]bool{}
	for _, p := range rep.Probes {
		if p.Status == "ok" {
			ok[p.Name] = true
		}
	}
	id := rep.Identity()
	return s.Apply(state.Scan{
		Host: cmp.Or(id.InstanceID, id.Hostname, "unknown-host"), ScannedAt: rep.ScannedAt,
		Results: rep.Results, ProbesOK: ok,
	}, state.Options{Refresh: r.opts.Refresh, NoImport: !r.hubOK(), MaxExposures: r.opts.MaxExposures})
}

// outgoingItems is what one report sends: its log events, and its findings (encoded) with
// their ids.
type outgoingItems struct {
	events   []sink.LogEvent
	findings []json.RawMessage
	newIDs   map[string]bool // the findings' ids, as Security Hub has them (asff.Trunc)
}

// outgoing turns the lifecycle's changes into what is sent: a log event per change to log
// (with a log group), and per change to import a finding, or in central mode its record,
// when Security Hub can take it. It counts them in st.
func (r *Reporter) outgoing(rep *Report, changes []state.Change, st *SpoolStats) (outgoingItems, error) {
	host := hubHost(rep)
	out := outgoingItems{newIDs: map[string]bool{}}
	ts := rep.ScannedAt.UnixMilli()
	for _, c := range changes {
		if c.Exposure {
			st.Exposures++
		}
		if c.Lifecycle == state.Untracked {
			st.Untracked++
			r.log.Warn("too many exposures no longer seen: this one is sent a last time and no longer refreshed", "id", c.Result.ID, "check", c.Result.Check, "last_seen", c.LastObserved)
		}
		if c.Log && r.cfg.CloudWatchLogs.LogGroup != "" {
			out.events = append(out.events, sink.LogEvent{Timestamp: ts, Message: resultEvent(rep, c)})
		}
		if c.Import && r.cfg.SecurityHub.Enabled && r.hubIssue != "" {
			st.HubSkipped++
		}
		if !c.Import || !r.hubOK() {
			continue
		}
		// A resolved change's result already says PASSED and why (state.ResolvedResult).
		rec := asff.Record{
			ID: c.Result.ID, Lifecycle: string(c.Lifecycle), Result: c.Result,
			FirstObserved: c.FirstObserved, LastObserved: c.LastObserved,
			Created: c.FirstObserved, Updated: rep.ScannedAt,
			Archived: c.Archive, AgentVersion: Version(),
		}
		var b []byte
		var err error
		if r.cfg.SecurityHub.Central() {
			// The record, not the finding: the forwarder builds the finding for the host
			// that signed the event (the same asff code), so no host can speak for another.
			b, err = centralRecord(rec)
		} else {
			b, err = json.Marshal(rec.Finding(host))
		}
		if err != nil {
			return out, fmt.Errorf("encode finding: %w", err)
		}
		out.findings = append(out.findings, b)
		out.newIDs[asff.Trunc(rec.ID, asff.MaxID)] = true
		st.Findings++
		if c.Archive {
			st.Archived++
		}
	}
	return out, nil
}

// spoolLogs spools the log batch: the report's events, then the run summary and metrics
// (which count the events dropped to make room, droppedByFindings among them).
func (r *Reporter) spoolLogs(rep *Report, events []sink.LogEvent, droppedByFindings, backlog int, checks bool, st *SpoolStats) error {
	ts := rep.ScannedAt.UnixMilli()
	items := make([]json.RawMessage, len(events), len(events)+1)
	for i, e := range events {
		items[i], _ = json.Marshal(e)
	}
	// Make room for the batch as the spool writes it: JSON escapes the messages again, so
	// it is larger than they are; 64 bytes more for the digits the dropped count may add
	// to the summary. With room made here, Put drops nothing the summary would not count.
	st.DroppedEvents = droppedByFindings
	metrics := func() []json.RawMessage {
		var out []json.RawMessage
		for _, m := range metricEvents(rep, *st, backlog, checks) {
			b, _ := json.Marshal(sink.LogEvent{Timestamp: ts, Message: m})
			out = append(out, b)
		}
		return out
	}
	ms := metrics()
	b, _ := json.Marshal(spool.Batch{Kind: spool.Logs, Items: append(items, ms...)})
	dropped, err := r.spool.MakeRoom(int64(len(b)) + 64)
	if err != nil {
		return err
	}
	st.DroppedEvents += dropped
	if st.DroppedEvents > 0 {
		r.log.Warn("spool full: dropped the oldest log events", "dropped_events", st.DroppedEvents, "max_mb", r.cfg.Spool.MaxMB)
		ms = metrics()
	}
	items = append(items, ms...)
	more, err := r.spool.Put(spool.Logs, items)
	st.DroppedEvents += more
	if err != nil {
		return err
	}
	st.LogEvents = len(items)
	return nil
}

// commitState saves the state naming the batches just spooled: the commit point, after
// which they are delivered and the state is what the next report diffs from.
func (r *Reporter) commitState(s *state.State, rep *Report, checks bool) error {
	s.SpoolSeq, s.Identity = r.spool.Last(), rep.Identity()
	if checks && r.cfg.CloudWatchLogs.LogGroup != "" {
		s.CheckMetricsAt = rep.ScannedAt
	}
	return s.Save(r.statePath())
}

// supersede drops from the findings queue the pending versions, older than seq, of the
// findings newIDs names, and returns how many it dropped. Committed: older pending versions
// of these findings are superseded (imports are upserts by id), so the findings queue holds
// at most one version per id however long Security Hub stays unreachable; except that an
// exposure's oldest pending FAILED version stays too (pendingExposure), so at most two.
func (r *Reporter) supersede(seq uint64, newIDs map[string]bool) int {
	first := map[string]bool{}
	n, err := r.spool.Filter(spool.Findings, seq, func(raw json.RawMessage) bool {
		id, exposure, ok := pendingExposure(raw)
		switch {
		case !ok || !newIDs[id]:
			return true
		case exposure && !first[id]:
			first[id] = true
			return true
		}
		return false
	})
	if err != nil {
		r.log.Warn("spool: could not drop superseded findings", "err", err)
	}
	return n
}

// pendingExposure reads a spooled finding's id, and whether it is an exposure as seen
// (FAILED, of a secret check). Such a version is never superseded before Security Hub has it:
// Security Hub, and whoever follows its import events, has not had the finding as FAILED
// yet, and a secret that existed during an outage must arrive as it was seen, first.
func pendingExposure(raw json.RawMessage) (id string, exposure, ok bool) {
	var f struct {
		Id            string
		Compliance    struct{ Status string }
		ProductFields map[string]string
	}
	if json.Unmarshal(raw, &f) != nil {
		return "", false, false
	}
	return f.Id, f.Compliance.Status == string(probes.Failed) && probes.IsExposure(f.ProductFields["ec2sec/check"]), true
}

func (r *Reporter) statePath() string { return filepath.Join(r.dir, "state.json") }

// recoverState loads the lifecycle state and removes spool batches a crashed report wrote
// without saving its state (they will be made again, from the same state, by the next report).
// Call it holding the lock.
func (r *Reporter) recoverState() *state.State {
	s, err := state.Load(r.statePath())
	if err != nil {
		// An unreadable state would re-send everything as new and archive nothing; say so
		// and start afresh rather than stop reporting for good.
		r.log.Error("lifecycle state unreadable; starting afresh", "err", err)
		return &state.State{}
	}
	if !s.Exists() {
		return s
	}
	if n, err := r.spool.Commit(s.SpoolSeq); err != nil {
		r.log.Error("spool: cannot remove uncommitted batches", "err", err)
	} else if n > 0 {
		r.log.Warn("spool: removed batches of a report that did not finish; the next report makes them again", "batches", n)
	}
	return s
}

// resultEvent is one CloudWatch Logs event: the result as in `--format json`, with why it is
// reported. Oversized evidence is cut so the event stays within CloudWatch's event limit.
func resultEvent(rep *Report, c state.Change) string {
	ev := struct {
		Type         string        `json:"type"`
		Lifecycle    string        `json:"lifecycle"`
		ScannedAt    time.Time     `json:"scanned_at"`
		AgentVersion string        `json:"agent_version"`
		Host         Host          `json:"host"`
		Result       probes.Result `json:"result"`
	}{"result", string(c.Lifecycle), rep.ScannedAt, Version(), rep.Host, c.Result}
	b, _ := json.Marshal(ev)
	if len(b) > sink.MaxEventBytes {
		ev.Result.Evidence = map[string]any{"truncated": "evidence too large for a log event"}
		ev.Result.Reason = asff.Trunc(ev.Result.Reason, 1024)
		b, _ = json.Marshal(ev)
	}
	return string(b)
}

// Flush sends what the spool holds, oldest first per sink, keeping what was not accepted.
// It stops a sink at its first failure so its batches arrive in order.
func (r *Reporter) Flush(ctx context.Context) (FlushStats, error) {
	fs := FlushStats{Accepted: map[string]int{}, Rejected: map[string]int{}, Pending: map[string]int{}}
	lk, err := r.lock(ctx)
	if err != nil {
		return fs, err
	}
	defer lk.Release()
	s := r.recoverState()
	if r.host == "" && s.Exists() && (s.Identity.InstanceID != "" || s.Identity.Hostname != "") {
		// Nothing scanned yet in this process: deliver what an earlier run left, for the
		// host it was for.
		r.target(s.Identity)
	}
	if r.host != "" {
		if err := r.clients(ctx); err != nil {
			return fs, err
		}
	}
	var errs []error
	for _, q := range []struct {
		kind spool.Kind
		s    sink.Sink
	}{{spool.Logs, r.cw}, {spool.Findings, r.sh}} {
		errs = append(errs, r.flushQueue(ctx, s, q.kind, q.s, &fs)...)
	}
	return fs, errors.Join(errs...)
}

// flushQueue sends the batches of one kind to their sink, oldest first, and stops sending at
// the first that is not wholly delivered (the rest are counted pending). Without a sink,
// every item is counted pending.
func (r *Reporter) flushQueue(ctx context.Context, s *state.State, kind spool.Kind, to sink.Sink, fs *FlushStats) []error {
	names, err := r.spool.Pending(kind)
	if err != nil {
		return []error{err}
	}
	if to == nil {
		for _, n := range names {
			if b, err := r.spool.Read(n); err == nil {
				fs.Pending[string(kind)] += len(b.Items)
			}
		}
		return nil
	}
	var errs []error
	stop := false
	for _, name := range names {
		b, err := r.spool.Read(name)
		if err != nil {
			r.log.Error("spool: dropping an unreadable batch", "file", name, "err", err)
			r.spool.Replace(name, kind, nil)
			continue
		}
		if stop {
			fs.Pending[to.Name()] += len(b.Items)
			continue
		}
		batchErrs, failed := r.deliverBatch(ctx, s, kind, to, name, b, fs)
		errs = append(errs, batchErrs...)
		if failed {
			stop = true
		}
	}
	return errs
}

// deliverBatch sends one batch and keeps in the spool what the sink did not take (nor
// reject); failed says the batch was not wholly delivered, or the spool not updated.
func (r *Reporter) deliverBatch(ctx context.Context, s *state.State, kind spool.Kind, to sink.Sink, name string, b spool.Batch, fs *FlushStats) (errs []error, failed bool) {
	outcomes, sendErr := to.Send(ctx, b.Items)
	r.opts.at("sent")
	var keep, refused, again []json.RawMessage
	ats := map[string]time.Time{}
	for i, o := range outcomes {
		switch o {
		case sink.Accepted:
			fs.Accepted[to.Name()]++
		case sink.Rejected:
			fs.Rejected[to.Name()]++
			if kind != spool.Findings {
				break
			}
			if id, v, at, ok := refusedArchive(s, b.Items[i], time.Now()); ok && ats[id].IsZero() {
				refused, again, ats[id] = append(refused, b.Items[i]), append(again, v), at
			}
		default:
			keep = append(keep, b.Items[i])
		}
	}
	// A refused archive leaves its batch only once a new version of it is committed
	// to the spool: the state may already have forgotten the finding.
	if len(again) > 0 {
		if err := r.resendArchives(s, again, ats); err != nil {
			errs = append(errs, err)
			keep = append(keep, refused...)
		}
	}
	if err := r.spool.Replace(name, kind, keep); err != nil {
		errs = append(errs, err)
		failed = true
	}
	fs.Pending[to.Name()] += len(keep)
	if sendErr != nil || len(keep) > 0 {
		errs = append(errs, fmt.Errorf("%s: %w", to.Name(), cmp.Or(sendErr, errors.New("some items not accepted"))))
		failed = true
	}
	return errs, failed
}

// centralRecord encodes a finding record for central mode, its evidence cut (as for a log
// event) when it would not fit a findings event with the identity.
func centralRecord(rec asff.Record) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err == nil && len(b) > sink.MaxRecordBytes {
		rec.Result.Evidence = map[string]any{"truncated": "evidence too large for a findings event"}
		rec.Result.Reason = asff.Trunc(rec.Result.Reason, 1024)
		b, err = json.Marshal(rec)
	}
	return b, err
}

// identityProof reads the instance identity document and its RSA-2048 PKCS#7 signature from
// IMDS: what the forwarder verifies against AWS's regional certificate.
func identityProof(c *metadata.Client) sink.ProofFunc {
	return func(ctx context.Context) (sink.Proof, error) {
		doc, err := c.Dynamic(ctx, "instance-identity/document")
		if err != nil {
			return sink.Proof{}, err
		}
		sig, err := c.Dynamic(ctx, "instance-identity/rsa2048")
		if err != nil {
			return sink.Proof{}, err
		}
		return sink.Proof{Document: string(doc), RSA2048: strings.TrimSpace(string(sig))}, nil
	}
}
