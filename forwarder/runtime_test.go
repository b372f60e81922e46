package forwarder

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/awsfake"
	"github.com/ec2sec/ec2sec/internal/testca"
	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes"
)

// runtimeAPI is a small emulator of the Lambda Runtime API: it hands out the queued events
// one per /next and records each invocation's response or error.
type runtimeAPI struct {
	*httptest.Server
	mu      sync.Mutex
	queue   [][]byte
	results map[string]string // request id -> "response: ..." or "error: ..."
	initErr string
	done    chan struct{}
}

func newRuntimeAPI(t *testing.T, events ...[]byte) *runtimeAPI {
	api := &runtimeAPI{queue: events, results: map[string]string{}, done: make(chan struct{})}
	mux := http.NewServeMux()
	n := 0
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		api.mu.Lock()
		if len(api.queue) == 0 {
			api.mu.Unlock()
			<-r.Context().Done() // long poll: no more invocations
			return
		}
		ev := api.queue[0]
		api.queue = api.queue[1:]
		n++
		id := "req-" + string(rune('0'+n))
		api.mu.Unlock()
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", id)
		w.Header().Set("Lambda-Runtime-Deadline-Ms", "9999999999999")
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:"+acct+":function:ec2sec-forwarder")
		w.Write(ev)
	})
	record := func(kind string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			api.mu.Lock()
			api.results[r.PathValue("id")] = kind + ": " + string(b)
			if len(api.results) == 2 {
				close(api.done)
			}
			api.mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
		}
	}
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", record("response"))
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", record("error"))
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		api.mu.Lock()
		api.initErr = string(b)
		api.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	api.Server = httptest.NewServer(mux)
	t.Cleanup(api.Close)
	return api
}

// The bootstrap binary, run as Lambda runs it (AWS_LAMBDA_RUNTIME_API, its settings in the
// environment, no flags), under the emulator: a signed subscription payload is imported into
// the strict fake, a garbage one answered (rejected, not an error), and metrics go to stdout.
func TestBootstrapUnderRuntimeAPI(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bootstrap")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ec2sec-forwarder").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ca := testca.New(t, "aws")
	fake := awsfake.New(t)
	at := time.Now().UTC().Truncate(time.Millisecond)
	doc := testca.Document(instA, acct, region)
	good := SubscriptionEvent(payload(instA, findingsEvent(t, sinkProof(doc, ca.Sign(t, doc, testca.Options{})), record(instA, "public-ipv4", probes.Failed, at))))
	api := newRuntimeAPI(t, good, []byte(`{"awslogs":{"data":"bm90IGd6aXA="}}`))
	cmd := exec.Command(bin)
	cmd.Env = testenv.Environ("AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(api.URL, "http://"),
		"AWS_ENDPOINT_URL_SECURITYHUB="+fake.URL, "EC2SEC_TRUST_PEM="+ca.PEM(region), "AWS_REGION="+region)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-api.done:
	case <-time.After(30 * time.Second):
	}
	// Stopped before its output is read: the copies from its pipes are then complete.
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	api.mu.Lock()
	defer api.mu.Unlock()
	var res Result
	if r := api.results["req-1"]; !strings.HasPrefix(r, "response: ") || json.Unmarshal([]byte(strings.TrimPrefix(r, "response: ")), &res) != nil || res.Imported != 1 {
		t.Errorf("first invocation: %s", r)
	}
	if r := api.results["req-2"]; !strings.HasPrefix(r, "response: ") || !strings.Contains(r, ReasonMalformedPayload) {
		t.Errorf("second invocation: %s", r)
	}
	if len(fake.Findings()) != 1 {
		t.Errorf("%d findings imported", len(fake.Findings()))
	}
	if !strings.Contains(stdout.String(), `"Namespace":"ec2sec/forwarder"`) {
		t.Errorf("no EMF metrics on stdout: %s", stdout.String())
	}
	if !strings.Contains(stderr.String(), ReasonMalformedPayload) {
		t.Errorf("no rejection log line: %s", stderr.String())
	}
}

// A setup error is reported to the Runtime API's init/error, as Lambda expects.
func TestBootstrapInitError(t *testing.T) {
	api := newRuntimeAPI(t)
	err := InitError(strings.TrimPrefix(api.URL, "http://"), os.ErrNotExist)
	if err != nil || !strings.Contains(api.initErr, "ForwarderInitError") {
		t.Errorf("%v %q", err, api.initErr)
	}
}

// A panicking handler fails its invocation, not the runtime.
func TestRunLambdaSurvivesPanic(t *testing.T) {
	api := newRuntimeAPI(t, []byte(`{}`), []byte(`{}`))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	go RunLambda(ctx, strings.TrimPrefix(api.URL, "http://"), func(ctx context.Context, ev []byte) ([]byte, error) {
		if n++; n == 1 {
			panic("boom")
		}
		return []byte(`{"ok":true}`), nil
	}, discardLog())
	select {
	case <-api.done:
	case <-time.After(10 * time.Second):
		t.Fatal("no answers")
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if !strings.HasPrefix(api.results["req-1"], "error: ") || !strings.HasPrefix(api.results["req-2"], "response: ") {
		t.Errorf("%v", api.results)
	}
}
