package probes

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// mgmtIMDS is a loopback IMDS that speaks the IMDSv2 token protocol and answers meta-data
// paths from a map (a missing path is 404).
func mgmtIMDS(t *testing.T, metaData map[string]string) string {
	t.Helper()
	const token = "test-token"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			w.Write([]byte(token))
			return
		}
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		p, ok := strings.CutPrefix(r.URL.Path, "/latest/meta-data/")
		v, found := metaData[p]
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(v))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
