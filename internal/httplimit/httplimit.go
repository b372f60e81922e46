// Package httplimit bounds HTTP response bodies where they enter the process, before any
// client code (the AWS SDK's deserializers, which read a whole body into memory) sees them:
// a hostile or broken endpoint then costs at most the bound, not whatever it chooses to send.
package httplimit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Bounds for ec2sec's peers. IMDS answers are small (a token is 56 bytes, user data at most
// 16 KB raw); the AWS APIs the agent calls answer about one instance or one batch (the
// largest, a BatchImportFindings of 100 failed findings, is under 100 KB).
const (
	IMDSToken    = 4 << 10
	IMDSAnswer   = 64 << 10
	IMDSUserData = 1 << 20
	AWSAPI       = 2 << 20
	// Headers are bounded by the transport (http.Transport.MaxResponseHeaderBytes).
	IMDSHeaders = 16 << 10
	AWSHeaders  = 64 << 10
)

// TooLargeError is what reading a body past its bound returns.
type TooLargeError struct {
	Limit int64
	URL   string
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("response from %s larger than %d bytes: cut off", e.URL, e.Limit)
}

// SDKOption is an AWS SDK API option (config.WithAPIOptions, or a client's APIOptions)
// that bounds every response body to limit bytes before the operation's deserializer, or the
// middleware that drains a body before closing it, reads a byte. Clients built from a config
// (service clients, STS for assumed roles, the IMDS client of the credential chain) copy it.
func SDKOption(limit int64) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		// After = innermost in the deserialize step: it sees the transport's response first.
		return s.Deserialize.Add(middleware.DeserializeMiddlewareFunc("ec2secBoundedBody",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if r, ok := out.RawResponse.(*smithyhttp.Response); ok && r != nil {
					Bound(r.Response, limit)
				}
				return out, md, err
			}), middleware.After)
	}
}

// Transport bounds every response body of Base (http.DefaultTransport when nil) to
// Limit(req) bytes.
type Transport struct {
	Base  http.RoundTripper
	Limit func(*http.Request) int64
}

// RoundTrip sends req and bounds the response's body.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err == nil {
		Bound(resp, t.Limit(req))
	}
	return resp, err
}

// Bound replaces resp.Body with one that returns a *TooLargeError instead of byte limit+1.
// A Content-Length over the limit fails the first read, and is hidden (-1) so that no reader
// sizes a buffer by it.
func Bound(resp *http.Response, limit int64) {
	if resp == nil || resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	url := "?"
	if r := resp.Request; r != nil && r.URL != nil {
		url = (&neturl.URL{Scheme: r.URL.Scheme, Host: r.URL.Host, Path: r.URL.Path}).String() // no userinfo, no query
	}
	b := &body{rc: resp.Body, left: limit, tooLarge: &TooLargeError{Limit: limit, URL: url}}
	if resp.ContentLength > limit {
		b.err = b.tooLarge
		resp.ContentLength = -1
	}
	resp.Body = b
}

type body struct {
	rc       io.ReadCloser
	left     int64
	tooLarge *TooLargeError
	err      error
}

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.left <= 0 {
		// At the bound: one more byte says whether the body goes on.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			b.err = b.tooLarge
			return 0, b.err
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

// Close closes the underlying body; one cut off is not drained, so its connection closes.
func (b *body) Close() error { return b.rc.Close() }
