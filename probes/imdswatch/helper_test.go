package imdswatch

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
)

// helper is the test binary run as a child process: an IMDS client making one kind of
// request (IMDSWATCH_URL), or a fake IMDS serving on IMDSWATCH_LISTEN until killed.
func helper(mode string) int {
	url := os.Getenv("IMDSWATCH_URL")
	switch mode {
	case "load":
		return loadHelperFn()
	case "serve":
		l, err := net.Listen("tcp", os.Getenv("IMDSWATCH_LISTEN"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// IMDSv1 allowed, at the kernel's default TTL: the watcher sees requests, whatever
		// the answers.
		s, _ := fakeimds.Start(l)
		s.Set(func(s *fakeimds.Server) { s.V1, s.HopLimit = true, 0 })
		fmt.Println("ready")
		select {} // until killed
	case "token":
		return do("PUT", url+"/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
	case "v2":
		return do("GET", url+"/latest/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": "secret-token-value-XYZ"})
	case "v1creds":
		return do("GET", url+"/latest/meta-data/iam/security-credentials/web", nil)
	case "split":
		// A v2 request written a few bytes at a time: the kernel must follow it across writes.
		host := strings.TrimPrefix(url, "http://")
		c, err := net.Dial("tcp", host)
		if err != nil {
			return 1
		}
		defer c.Close()
		req := "GET /latest/meta-data/iam/security-credentials/web HTTP/1.1\r\nHost: " + host +
			"\r\nX-Aws-Ec2-Metadata-Token: secret-token-value-XYZ\r\nConnection: close\r\n\r\n"
		for i := 0; i < len(req); i += 7 {
			c.Write([]byte(req[i:min(i+7, len(req))]))
			time.Sleep(time.Millisecond)
		}
		io.Copy(io.Discard, c)
		return 0
	}
	return 2
}

// loadHelperFn is loadHelper where the watcher exists (Linux).
var loadHelperFn = func() int { return 2 }

func do(method, url string, h map[string]string) int {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 1
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// A real program goes on after its answer; one that exits within microseconds may be gone
	// before the watcher looks at /proc (it is then named by the kernel's fields only).
	time.Sleep(100 * time.Millisecond)
	return 0
}
