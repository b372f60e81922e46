package bench

import (
	"io"
	"net/http"
	"net/http/httptest"
)

// DenyEC2 starts a loopback stand-in for the EC2 API that refuses every call at once
// (UnauthorizedOperation), as EC2 does for an instance role without the optional EC2
// statement: the ec2api probe builds its client and makes its calls. A closed port would time
// the SDK's retry backoff instead of the agent. The caller closes it.
func DenyEC2() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>`)
	}))
}
