// Package awsfake is a strict fake of the AWS APIs ec2sec reports to: CloudWatch Logs
// (CreateLogGroup, CreateLogStream, PutLogEvents), Security Hub (BatchImportFindings) and STS
// (AssumeRole). It enforces the documented limits that moto does not (batch counts and sizes,
// chronological order, the 24 h span, event age, 100 findings per call, 10 TPS burst 30),
// injects faults on demand (throttling, 5xx, connection resets, partial FailedFindings), and
// records every request body so tests can validate them against AWS's own model (botocore)
// and search them for leaks.
package awsfake

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is an injected failure for one call.
type Fault int

// Faults.
const (
	Throttle    Fault = iota + 1 // the API's throttling error
	ServerError                  // HTTP 500
	Reset                        // the connection is reset before any answer
	PartialFail                  // Security Hub only: the first finding fails with a retryable code, the second (if any) with InvalidInput
	Denied                       // AccessDeniedException
	// Lost: the call is processed (findings stored, events written) and then the connection
	// is reset before the answer, so the client cannot know it succeeded and sends again.
	Lost
)

// Ops named by Inject.
const (
	OpPutLogEvents        = "PutLogEvents"
	OpCreateLogGroup      = "CreateLogGroup"
	OpCreateLogStream     = "CreateLogStream"
	OpBatchImportFindings = "BatchImportFindings"
	OpAssumeRole          = "AssumeRole"
)

// Event is a stored log event.
type Event struct {
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}

// Server is the fake. Its fields are guarded by mu; use the methods.
type Server struct {
	*httptest.Server
	t  testing.TB
	mu sync.Mutex

	faults    map[string][]Fault
	Now       func() time.Time
	groups    map[string]map[string][]Event // group -> stream -> events
	findings  map[string]json.RawMessage    // id -> latest finding
	imports   map[string]int                // id -> times imported
	bodies    [][]byte                      // every BatchImportFindings body
	all       [][]byte                      // every request body of any API
	calls     map[string]int
	akids     map[string][]string // op -> access key ids that signed it
	violation []string
	buckets   map[string]*bucket // account/region -> BatchImportFindings rate bucket
	throttled map[string]int     // op -> calls answered with a throttling error
	outage    Fault              // answer every call with this fault (0 = none)
	failed    []FailedFinding    // FailedFindings answered, in order
	accepted  []Imported         // every finding accepted, in order
	// RateClock is the clock Security Hub's rate limit runs on (default time.Now). A fleet
	// simulation that compresses time runs it faster, so the limit stays 10 per simulated
	// second.
	RateClock func() time.Time
	// Compact keeps memory flat for fleet simulations: request bodies are not recorded and
	// each finding is stored as its Id, UpdatedAt, RecordState and Compliance only.
	Compact bool
	// LogSink, when set, receives the events of every accepted PutLogEvents call instead of
	// the fake keeping them (Events then returns none): a fleet simulation that only counts
	// what arrived keeps its memory flat. It is called without the fake's lock held.
	LogSink func(group, stream string, events []Event)
	// Role credentials AssumeRole hands out.
	RoleKeyID, RoleSecret string
	RoleTTL               time.Duration
}

// New starts the fake on loopback.
func New(t testing.TB) *Server {
	s := &Server{
		t: t, faults: map[string][]Fault{}, Now: time.Now,
		groups: map[string]map[string][]Event{}, findings: map[string]json.RawMessage{},
		imports: map[string]int{}, calls: map[string]int{}, akids: map[string][]string{},
		buckets: map[string]*bucket{}, throttled: map[string]int{}, RateClock: time.Now,
		RoleKeyID: "ASIAFAKEROLEKEY00001", RoleSecret: "role-secret-PLANTED-0000000000000000000000", RoleTTL: time.Hour,
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Env returns the AWS_ENDPOINT_URL_* settings that point the SDK at the fake.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": s.URL,
		"AWS_ENDPOINT_URL_SECURITYHUB":     s.URL,
		"AWS_ENDPOINT_URL_STS":             s.URL,
	}
}

// Inject queues faults for the next calls of op, one per call.
func (s *Server) Inject(op string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = append(s.faults[op], faults...)
}

func (s *Server) nextFault(op string) Fault {
	q := s.faults[op]
	if len(q) == 0 {
		return 0
	}
	s.faults[op] = q[1:]
	return q[0]
}

var credRe = regexp.MustCompile(`Credential=([^/]+)/`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	op := ""
	switch {
	case strings.HasPrefix(r.Header.Get("X-Amz-Target"), "Logs_20140328."):
		op = strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "Logs_20140328.")
	case r.Method == http.MethodPost && r.URL.Path == "/findings/import":
		op = OpBatchImportFindings
	case strings.Contains(string(body), "Action=AssumeRole"):
		op = OpAssumeRole
	default:
		http.Error(w, "awsfake: unknown request "+r.Method+" "+r.URL.Path, 404)
		return
	}
	s.mu.Lock()
	s.calls[op]++
	if !s.Compact {
		s.all = append(s.all, body)
	}
	if m := credRe.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		s.akids[op] = append(s.akids[op], m[1])
	} else {
		s.violation = append(s.violation, op+": unsigned request")
	}
	fault := s.nextFault(op)
	if s.outage != 0 && fault == 0 {
		fault = s.outage
	}
	s.mu.Unlock()

	switch fault {
	case Reset:
		reset(w)
		return
	case Lost:
		// Serve into a discarded recorder, then reset: done, but the client never hears it.
		s.dispatch(httptest.NewRecorder(), r, op, body, 0)
		reset(w)
		return
	case ServerError:
		s.jsonErr(w, op, 500, "InternalFailure", "injected 500")
		return
	case Throttle:
		s.throttle(w, op)
		return
	case Denied:
		s.jsonErr(w, op, 400, "AccessDeniedException", "injected: not authorized")
		return
	}
	s.dispatch(w, r, op, body, fault)
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, op string, body []byte, fault Fault) {
	switch op {
	case OpCreateLogGroup, OpCreateLogStream, "PutLogEvents":
		s.logs(w, op, body, r.Header.Get("X-Amzn-Logs-Format") == "json/emf")
	case OpBatchImportFindings:
		s.hub(w, body, fault == PartialFail)
	case OpAssumeRole:
		s.assume(w)
	default:
		s.jsonErr(w, op, 400, "UnknownOperationException", op)
	}
}

// reset closes the connection with a RST before any answer. Off a real connection (the
// in-process transport of a fleet simulation) it panics with http.ErrAbortHandler, which
// net/http turns into a dropped connection too.
func reset(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		conn, _, err := hj.Hijack()
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST, not FIN
			}
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// ClearFaults drops the faults Inject queued that no call has met yet, and returns how many.
func (s *Server) ClearFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for op, q := range s.faults {
		n += len(q)
		delete(s.faults, op)
	}
	return n
}

// Outage answers every call of every API with f until Outage(0): an endpoint that is down
// (Reset), failing (ServerError) or in a throttling storm (Throttle) for as long as a test
// says. Queued faults of Inject still come first.
func (s *Server) Outage(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = f
}

// bucket is a token bucket: 10 per second, burst 30, as Security Hub documents for
// BatchImportFindings per account and region.
type bucket struct {
	tokens float64
	at     time.Time
}

const (
	hubRate  = 10
	hubBurst = 30
)

// take reports whether a call at now may proceed, taking a token if so.
func (b *bucket) take(now time.Time) bool {
	if b.at.IsZero() {
		b.tokens, b.at = hubBurst, now
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(hubBurst, b.tokens+d.Seconds()*hubRate)
		b.at = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (s *Server) throttle(w http.ResponseWriter, op string) {
	s.mu.Lock()
	s.throttled[op]++
	s.mu.Unlock()
	if op == OpBatchImportFindings {
		s.jsonErr(w, op, 429, "TooManyRequestsException", "Rate exceeded")
		return
	}
	s.jsonErr(w, op, 400, "ThrottlingException", "Rate exceeded")
}

func (s *Server) jsonErr(w http.ResponseWriter, op string, code int, typ, msg string) {
	if op == OpAssumeRole {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(code)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>x</RequestId></ErrorResponse>`, typ, msg)
		return
	}
	if op == OpBatchImportFindings {
		w.Header().Set("X-Amzn-ErrorType", typ)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]string{"Code": typ, "Message": msg})
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func (s *Server) violate(w http.ResponseWriter, op, format string, args ...any) {
	msg := fmt.Sprintf(op+": "+format, args...)
	s.mu.Lock()
	s.violation = append(s.violation, msg)
	s.mu.Unlock()
	s.jsonErr(w, op, 400, "InvalidParameterException", msg)
}

// PutLogEvents limits.
const (
	maxEvents = 10_000
	maxBytes  = 1_048_576
	overhead  = 26
	maxEvent  = 1_048_576 - overhead
)

// logs serves CloudWatch Logs. emf tells whether the call carried the Embedded Metric Format
// header, which the EMF specification requires for EMF documents (and which must not mark
// plain events).
func (s *Server) logs(w http.ResponseWriter, op string, body []byte, emf bool) {
	var in struct {
		LogGroupName  string  `json:"logGroupName"`
		LogStreamName string  `json:"logStreamName"`
		LogEvents     []Event `json:"logEvents"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		s.violate(w, op, "bad JSON: %v", err)
		return
	}
	s.mu.Lock()
	g, gok := s.groups[in.LogGroupName]
	_, sok := g[in.LogStreamName]
	switch op {
	case OpCreateLogGroup:
		if !gok {
			s.groups[in.LogGroupName] = map[string][]Event{}
		}
	case OpCreateLogStream:
		if gok && !sok {
			g[in.LogStreamName] = nil
		}
	}
	s.mu.Unlock()
	switch op {
	case OpCreateLogGroup:
		if gok {
			s.jsonErr(w, op, 400, "ResourceAlreadyExistsException", "The specified log group already exists")
			return
		}
		w.Write([]byte("{}"))
		return
	case OpCreateLogStream:
		if !gok {
			s.jsonErr(w, op, 400, "ResourceNotFoundException", "The specified log group does not exist.")
			return
		}
		if sok {
			s.jsonErr(w, op, 400, "ResourceAlreadyExistsException", "The specified log stream already exists")
			return
		}
		w.Write([]byte("{}"))
		return
	}
	if !gok || !sok {
		s.jsonErr(w, op, 400, "ResourceNotFoundException", "The specified log group or stream does not exist.")
		return
	}
	evs := in.LogEvents
	switch {
	case len(evs) == 0:
		s.violate(w, op, "no events")
		return
	case len(evs) > maxEvents:
		s.violate(w, op, "%d events > %d", len(evs), maxEvents)
		return
	}
	size := 0
	for i, e := range evs {
		var doc struct {
			AWS json.RawMessage `json:"_aws"`
		}
		isEMF := json.Unmarshal([]byte(e.Message), &doc) == nil && len(doc.AWS) > 0
		if isEMF != emf {
			s.violate(w, op, "event %d: EMF document %v, x-amzn-logs-format: json/emf header %v", i, isEMF, emf)
			return
		}
		if len(e.Message) > maxEvent {
			s.violate(w, op, "event %d too large", i)
			return
		}
		size += len(e.Message) + overhead
		if i > 0 && e.Timestamp < evs[i-1].Timestamp {
			s.violate(w, op, "events not in chronological order at %d", i)
			return
		}
	}
	if size > maxBytes {
		s.violate(w, op, "batch of %d bytes > %d", size, maxBytes)
		return
	}
	if evs[len(evs)-1].Timestamp-evs[0].Timestamp >= (24 * time.Hour).Milliseconds() {
		s.violate(w, op, "batch spans 24 h or more")
		return
	}
	now := s.Now().UnixMilli()
	tooOld, tooNew := -1, -1
	for i, e := range evs {
		if now-e.Timestamp > (14 * 24 * time.Hour).Milliseconds() {
			tooOld = i + 1 // exclusive end
		}
		if tooNew < 0 && e.Timestamp-now > (2*time.Hour).Milliseconds() {
			tooNew = i
		}
	}
	var kept []Event
	for i, e := range evs {
		if i < tooOld || (tooNew >= 0 && i >= tooNew) {
			continue
		}
		kept = append(kept, e)
	}
	if s.LogSink != nil {
		s.LogSink(in.LogGroupName, in.LogStreamName, kept)
	} else {
		s.mu.Lock()
		g[in.LogStreamName] = append(g[in.LogStreamName], kept...)
		s.mu.Unlock()
	}
	out := map[string]any{"nextSequenceToken": "1"}
	ri := map[string]int{}
	if tooOld > 0 {
		ri["tooOldLogEventEndIndex"] = tooOld
	}
	if tooNew >= 0 {
		ri["tooNewLogEventStartIndex"] = tooNew
	}
	if len(ri) > 0 {
		out["rejectedLogEventsInfo"] = ri
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

var productRe = regexp.MustCompile(`"ProductArn":"arn:[^:"]*:securityhub:([^:"]*):([^:"]*):`)

var required = []string{"SchemaVersion", "Id", "ProductArn", "GeneratorId", "AwsAccountId", "CreatedAt", "UpdatedAt", "Title", "Description", "Resources"}

func (s *Server) hub(w http.ResponseWriter, body []byte, partial bool) {
	op := OpBatchImportFindings
	// The rate limit is per account and region: those of the product ARN (the caller's),
	// found without decoding the body, so a throttled call costs little.
	key := ""
	if m := productRe.FindSubmatch(body); m != nil {
		key = string(m[2]) + "/" + string(m[1])
	}
	s.mu.Lock()
	if !s.Compact {
		s.bodies = append(s.bodies, body)
	}
	b := s.buckets[key]
	if b == nil {
		b = &bucket{}
		s.buckets[key] = b
	}
	limited := !b.take(s.RateClock())
	s.mu.Unlock()
	if limited {
		s.throttle(w, op)
		return
	}
	var in struct {
		Findings []map[string]json.RawMessage `json:"Findings"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		s.violate(w, op, "bad JSON: %v", err)
		return
	}
	if len(in.Findings) == 0 || len(in.Findings) > 100 {
		s.violate(w, op, "%d findings (want 1..100)", len(in.Findings))
		return
	}
	var failed []map[string]string
	ok := 0
	for i, f := range in.Findings {
		var id, acct, arn string
		json.Unmarshal(f["Id"], &id)
		json.Unmarshal(f["AwsAccountId"], &acct)
		json.Unmarshal(f["ProductArn"], &arn)
		for _, k := range required {
			if _, ok := f[k]; !ok {
				s.violate(w, op, "finding %q lacks %s", id, k)
				return
			}
		}
		if !strings.HasSuffix(arn, ":"+acct+":product/"+acct+"/default") {
			failed = append(failed, map[string]string{"Id": id, "ErrorCode": "AccessDeniedException", "ErrorMessage": "product ARN not of the account"})
			continue
		}
		var updated, record string
		json.Unmarshal(f["UpdatedAt"], &updated)
		json.Unmarshal(f["RecordState"], &record)
		if partial && i < 2 {
			code := "InternalFailure"
			if i == 1 {
				code = "InvalidInput"
			}
			failed = append(failed, map[string]string{"Id": id, "ErrorCode": code, "ErrorMessage": "injected"})
			s.mu.Lock()
			s.failed = append(s.failed, FailedFinding{Id: id, UpdatedAt: updated, ErrorCode: code})
			s.mu.Unlock()
			continue
		}
		var raw []byte
		if s.Compact {
			raw, _ = json.Marshal(map[string]json.RawMessage{"Id": f["Id"], "UpdatedAt": f["UpdatedAt"], "RecordState": f["RecordState"], "Compliance": f["Compliance"]})
		} else {
			raw, _ = json.Marshal(f)
		}
		s.mu.Lock()
		s.findings[id] = raw
		s.imports[id]++
		s.accepted = append(s.accepted, Imported{Id: id, UpdatedAt: updated, RecordState: record})
		s.mu.Unlock()
		ok++
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"FailedCount": len(failed), "SuccessCount": ok, "FailedFindings": cmpNil(failed)})
}

func cmpNil(f []map[string]string) []map[string]string {
	if f == nil {
		return []map[string]string{}
	}
	return f
}

func (s *Server) assume(w http.ResponseWriter) {
	type creds struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	}
	type result struct {
		XMLName xml.Name `xml:"AssumeRoleResponse"`
		Creds   creds    `xml:"AssumeRoleResult>Credentials"`
		Arn     string   `xml:"AssumeRoleResult>AssumedRoleUser>Arn"`
		RoleID  string   `xml:"AssumeRoleResult>AssumedRoleUser>AssumedRoleId"`
		ReqID   string   `xml:"ResponseMetadata>RequestId"`
	}
	s.mu.Lock()
	ttl := s.RoleTTL
	c := creds{s.RoleKeyID, s.RoleSecret, "role-session-token-PLANTED", time.Now().Add(ttl).UTC().Format(time.RFC3339)}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	xml.NewEncoder(w).Encode(result{Creds: c, Arn: "arn:aws:sts::111122223333:assumed-role/central/ec2sec", RoleID: "AROAFAKE:ec2sec", ReqID: "r1"})
}

// FailedFinding is one entry of FailedFindings the fake answered.
type FailedFinding struct{ Id, UpdatedAt, ErrorCode string }

// Imported is one finding version the fake accepted.
type Imported struct{ Id, UpdatedAt, RecordState string }

// Failed returns the FailedFindings answered so far, in order.
func (s *Server) Failed() []FailedFinding {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.failed)
}

// Accepted returns every finding version accepted so far, in order (a version sent twice,
// after a lost answer, appears twice).
func (s *Server) Accepted() []Imported {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.accepted)
}

// Throttled returns how many calls of op were answered with a throttling error, injected or
// by the rate limit.
func (s *Server) Throttled(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled[op]
}

// Streams returns the log streams of group.
func (s *Server) Streams(group string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.groups[group] {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Events returns the events stored in group/stream.
func (s *Server) Events(group, stream string) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.groups[group][stream])
}

// Findings returns the latest finding per id.
func (s *Server) Findings() map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]json.RawMessage, len(s.findings))
	for k, v := range s.findings {
		out[k] = v
	}
	return out
}

// Imports returns how often each id was imported.
func (s *Server) Imports() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.imports))
	for k, v := range s.imports {
		out[k] = v
	}
	return out
}

// Bodies returns every BatchImportFindings request body.
func (s *Server) Bodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bodies)
}

// AllBodies returns every request body the fake received.
func (s *Server) AllBodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.all)
}

// Calls returns how often op was called.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// KeyIDs returns the access key ids that signed op's calls.
func (s *Server) KeyIDs(op string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.akids[op])
}

// Violations returns the limit violations seen; a correct client causes none.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violation)
}
