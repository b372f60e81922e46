// Package fakeec2 is an EC2 (Query protocol) front for tests. It forwards to moto_server what
// moto implements, answers what moto lacks (GetSerialConsoleAccessStatus), refuses chosen
// actions with UnauthorizedOperation as IAM would, and counts every action it sees, so tests
// can hold the ec2api probe to one call of each API per scan.
package fakeec2

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// Server is the front. Configure it with Set.
type Server struct {
	URL string

	mu sync.Mutex
	// Upstream is moto_server's base URL; "" answers only what the front itself knows.
	Upstream string
	// Deny refuses these actions with 403 UnauthorizedOperation.
	Deny map[string]bool
	// Override answers these actions with the given XML body (HTTP 200).
	Override map[string]string
	// Hang never answers these actions (until the client gives up).
	Hang map[string]bool
	// SerialConsole is what GetSerialConsoleAccessStatus reports.
	SerialConsole bool
	calls         map[string]int
	keys          []string
}

// New starts a front forwarding to upstream ("" for none) and stops it when the test ends.
func New(t testing.TB, upstream string) *Server {
	t.Helper()
	s := &Server{Upstream: upstream, Deny: map[string]bool{}, Override: map[string]string{}, calls: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Set changes the configuration under the server's lock.
func (s *Server) Set(f func(s *Server)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// Calls returns how often each action was called since the last Reset.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// AccessKeys returns the access key ids requests were signed with since the last Reset.
func (s *Server) AccessKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys)
}

// Reset forgets the counted calls and access keys.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.keys = nil
}

// upstreamTransport opens a connection per request: moto's werkzeug server now and then
// drops a kept-alive connection mid-answer.
var upstreamTransport = &http.Transport{DisableKeepAlives: true}

const ns = "http://ec2.amazonaws.com/doc/2016-11-15/"

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form, _ := url.ParseQuery(string(body))
	action := form.Get("Action")

	s.mu.Lock()
	s.calls[action]++
	if _, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		key, _, _ := strings.Cut(cred, "/")
		if !slices.Contains(s.keys, key) {
			s.keys = append(s.keys, key)
		}
	}
	deny, hang, override, hasOverride := s.Deny[action], s.Hang[action], s.Override[action], s.Override[action] != ""
	serial, upstream := s.SerialConsole, s.Upstream
	s.mu.Unlock()

	switch {
	case hang:
		<-r.Context().Done()
	case deny:
		writeError(w, http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation. User: arn:aws:sts::123456789012:assumed-role/ec2sec/i-0123 is not authorized to perform: ec2:"+action+". Encoded authorization failure message: AAAAexampleblob")
	case hasOverride:
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		io.WriteString(w, override)
	case action == "GetSerialConsoleAccessStatus":
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<GetSerialConsoleAccessStatusResponse xmlns="%s"><requestId>fake-1</requestId><serialConsoleAccessEnabled>%t</serialConsoleAccessEnabled><managedBy>account</managedBy></GetSerialConsoleAccessStatusResponse>`, ns, serial)
	case upstream != "":
		s.forward(w, r, upstream, body)
	default:
		writeError(w, http.StatusBadRequest, "InvalidAction", "The action "+action+" is not valid for this web service.")
	}
}

func (s *Server) forward(w http.ResponseWriter, r *http.Request, upstream string, body []byte) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := upstreamTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>fake-err-1</RequestID></Response>`, code, msg)
}

// Client returns an EC2 client for endpoint with the test's fake credentials, one attempt
// per call (tests count calls).
func Client(endpoint string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		RetryMaxAttempts: 1,
		// moto's werkzeug server now and then drops a kept-alive connection mid-answer.
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) { tr.DisableKeepAlives = true }),
	})
}

// ctx is the seeding context: moto answers in milliseconds, but a wedged one must not hang
// the test binary.
func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30e9)
}
