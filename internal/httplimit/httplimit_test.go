package httplimit

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func response(body string, contentLength int64) *http.Response {
	return &http.Response{
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: contentLength,
		Request:       &http.Request{URL: &url.URL{Scheme: "http", User: url.UserPassword("user", "pass"), Host: "h", Path: "/x", RawQuery: "token=q"}},
	}
}

func TestBound(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		cl      int64
		wantErr bool
	}{
		{"under", "abc", 3, false},
		{"at the bound", "abcd", 4, false},
		{"at the bound, length unknown", "abcd", -1, false},
		{"one past", "abcde", -1, true},
		{"declared past", "ab", 1 << 40, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := response(tc.body, tc.cl)
			Bound(r, 4)
			b, err := io.ReadAll(r.Body)
			var tl *TooLargeError
			if got := errors.As(err, &tl); got != tc.wantErr {
				t.Fatalf("ReadAll = %q, %v; want too large: %v", b, err, tc.wantErr)
			}
			if tc.wantErr {
				if len(b) > 4 {
					t.Errorf("read %d bytes past a bound of 4", len(b))
				}
				if r.ContentLength > 4 {
					t.Errorf("ContentLength %d still visible", r.ContentLength)
				}
				if strings.Contains(err.Error(), "user") || strings.Contains(err.Error(), "pass") || strings.Contains(err.Error(), "token") {
					t.Errorf("error quotes URL userinfo: %v", err)
				}
				if _, err := r.Body.Read(make([]byte, 8)); err == nil {
					t.Error("a read after the cut succeeded")
				}
			} else if string(b) != tc.body {
				t.Errorf("read %q, want %q", b, tc.body)
			}
		})
	}
}
