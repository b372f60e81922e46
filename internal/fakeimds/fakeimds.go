// Package fakeimds is an IMDS double for tests, for what AWS's own emulator cannot do: set
// the IP TTL (hop limit) of the token response on the wire, turn the endpoint off, and
// inject faults (hangs, garbage, 5xx, truncated and oversized answers).
package fakeimds

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Fault is an injected misbehaviour applied to every request.
type Fault int

// The faults a Server can inject.
const (
	NoFault     Fault = iota
	Hang              // never answer (until the client gives up or the test ends)
	Garbage           // answer 200 with bytes that are no valid answer
	ServerError       // answer 500
	CloseMid          // send headers and part of the body, then close the connection
	Huge              // answer 200 with a 10 MB body
)

// Server is a fake IMDS on loopback. Configure its fields before the first request.
type Server struct {
	URL string

	mu          sync.Mutex
	V1          bool              // answer GETs without a token (HttpTokens optional)
	Off         bool              // answer 403 to everything (HttpEndpoint disabled)
	HopLimit    int               // IP TTL of the token response; 0 = kernel default (64)
	Fault       Fault             // misbehaviour for every request
	Paths       map[string]string // "meta-data/iam/info" -> body; missing = 404
	requests    []string          // "METHOD path" of every request: Requested()
	TokenHeader string            // the token handed out
	// Before, when set, runs before each request is answered (outside the lock): a test
	// delays answers with it (a slow or late IMDS) or learns when a request arrives.
	Before func(r *http.Request)

	srv *httptest.Server
}

type connKey struct{}

// New starts a fake IMDS for a standard instance in us-east-1 with IMDSv2 required and hop
// limit 1, and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	return NewOn(t, nil)
}

// NewOn is New on a listener of the caller's (nil = 127.0.0.1), e.g. one on [::1] for the
// IPv6 endpoint.
func NewOn(t testing.TB, l net.Listener) *Server {
	t.Helper()
	s, stop := Start(l)
	t.Cleanup(stop)
	return s
}

// Start is NewOn outside a test (the benchmark harness): the caller calls stop when done.
func Start(l net.Listener) (s *Server, stop func()) {
	s = &Server{HopLimit: 1, TokenHeader: "fake-token-0123456789", Paths: Instance()}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if l != nil {
		s.srv.Listener.Close()
		s.srv.Listener = l
	}
	s.srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	s.srv.Start()
	s.URL = s.srv.URL
	return s, func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
	}
}

// Instance returns the metadata of a typical instance: i-0123456789abcdef0 in us-east-1,
// account 123456789012, with an instance profile and no user data.
func Instance() map[string]string {
	return map[string]string{
		"dynamic/instance-identity/document": Document("i-0123456789abcdef0", "us-east-1"),
		"meta-data/hostname":                 "ip-10-0-0-12.ec2.internal",
		"meta-data/services/domain":          "amazonaws.com",
		"meta-data/services/partition":       "aws",
		"meta-data/iam/info":                 `{"Code":"Success","LastUpdated":"2026-11-28T10:00:00Z","InstanceProfileArn":"arn:aws:iam::123456789012:instance-profile/web","InstanceProfileId":"AIPAEXAMPLE"}`,
	}
}

// Document is the instance identity document of instance in region (account 123456789012,
// image ami-0123456789abcdef0), for tests that need another instance than Instance's.
func Document(instance, region string) string {
	return `{"accountId":"123456789012","architecture":"x86_64","availabilityZone":"` + region + `a","imageId":"ami-0123456789abcdef0","instanceId":"` + instance + `","instanceType":"t3.micro","privateIp":"10.0.0.12","region":"` + region + `","version":"2017-09-30"}`
}

// Requested returns a copy of the requests seen so far ("METHOD path"), safe to call while
// the server is in use.
func (s *Server) Requested() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Set configures the server under its lock.
func (s *Server) Set(f func(s *Server)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	v1, off, hop, fault, token, before := s.V1, s.Off, s.HopLimit, s.Fault, s.TokenHeader, s.Before
	body, found := s.Paths[strings.TrimPrefix(r.URL.Path, "/latest/")]
	s.mu.Unlock()
	if before != nil {
		before(r)
	}

	switch fault {
	case Hang:
		<-r.Context().Done()
		return
	case Garbage:
		w.Write([]byte("\x00\xff<html>not imds"))
		return
	case ServerError:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case CloseMid:
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("partial"))
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
		return
	case Huge:
		chunk := strings.Repeat("A", 64<<10)
		for i := 0; i < 160; i++ { // 10 MiB
			if _, err := w.Write([]byte(chunk)); err != nil {
				return
			}
		}
		return
	}
	if off {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "Bad Request", http.StatusBadRequest)
			return
		}
		if hop > 0 {
			if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
				setTTL(c, hop)
			}
		}
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		w.Write([]byte(token))
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if got := r.Header.Get("X-aws-ec2-metadata-token"); got != token && !(got == "" && v1) {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	if r.URL.Path == "/latest/meta-data/" || r.URL.Path == "/latest/meta-data" {
		w.Write([]byte("ami-id\nhostname\niam/\ninstance-id\nservices/\n"))
		return
	}
	if !found {
		http.NotFound(w, r)
		return
	}
	w.Write([]byte(body))
}

// setTTL sets the IP TTL (or IPv6 unicast hop limit) of the accepted connection, so the
// segments carrying the token response leave with it, as real IMDS's do.
func setTTL(c net.Conn, ttl int) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	v6 := false
	if a, ok := tc.LocalAddr().(*net.TCPAddr); ok && a.IP.To4() == nil {
		v6 = true
	}
	raw.Control(func(fd uintptr) {
		if v6 {
			setsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS, ttl)
		} else {
			setsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_TTL, ttl)
		}
	})
}
