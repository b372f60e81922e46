package forwarder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// The Lambda Runtime API (custom runtime, provided.al2023): the bootstrap asks for the next
// invocation, handles it, and posts its response or error, for ever. Documented at
// https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html; plain net/http, so the
// forwarder runs under any emulator of it.
const runtimePrefix = "/2018-06-01/runtime"

// Handler handles one invocation's event and returns its response.
type Handler func(ctx context.Context, event []byte) ([]byte, error)

// RunLambda serves invocations from the Runtime API at api (host:port, the value of
// AWS_LAMBDA_RUNTIME_API) until ctx ends or the API goes away.
func RunLambda(ctx context.Context, api string, h Handler, log *slog.Logger) error {
	base := "http://" + api + runtimePrefix
	client := &http.Client{} // no timeout: /next long-polls until there is an invocation
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/invocation/next", nil)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("runtime api: next invocation: %w", err)
		}
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxInvocationBytes+1))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || id == "" {
			return fmt.Errorf("runtime api: next invocation: status %d, request id %q", resp.StatusCode, id)
		}
		ictx, cancel := context.WithCancel(ctx)
		if ms, err := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64); err == nil && ms > 0 {
			// Leave a second to report before Lambda kills the invocation.
			ictx, cancel = context.WithDeadline(ctx, time.UnixMilli(ms).Add(-time.Second))
		}
		ictx = context.WithValue(ictx, arnKey{}, resp.Header.Get("Lambda-Runtime-Invoked-Function-Arn"))
		var out []byte
		if err == nil && len(body) > MaxInvocationBytes {
			err = fmt.Errorf("invocation larger than %d bytes", MaxInvocationBytes)
		}
		if err == nil {
			out, err = safeHandle(ictx, h, body)
		}
		cancel()
		if err != nil {
			log.Error("invocation failed", "request_id", id, "err", err)
			b, _ := json.Marshal(map[string]string{"errorMessage": err.Error(), "errorType": "ForwarderError"})
			if perr := post(ctx, client, base+"/invocation/"+id+"/error", b, "Unhandled"); perr != nil {
				return perr
			}
			continue
		}
		if err := post(ctx, client, base+"/invocation/"+id+"/response", out, ""); err != nil {
			return err
		}
	}
}

type arnKey struct{}

// InvokedARN is the ARN of the function the current invocation was made to ("" outside one).
func InvokedARN(ctx context.Context) string {
	s, _ := ctx.Value(arnKey{}).(string)
	return s
}

// safeHandle turns a panic into an error: a hostile payload must never take the runtime down.
func safeHandle(ctx context.Context, h Handler, body []byte) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	return h(ctx, body)
}

// InitError reports a failed start to the Runtime API, so Lambda says why.
func InitError(api string, cause error) error {
	b, _ := json.Marshal(map[string]string{"errorMessage": cause.Error(), "errorType": "ForwarderInitError"})
	return post(context.Background(), http.DefaultClient, "http://"+api+runtimePrefix+"/init/error", b, "Runtime.InitError")
}

func post(ctx context.Context, c *http.Client, url string, body []byte, errType string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if errType != "" {
		req.Header.Set("Lambda-Runtime-Function-Error-Type", errType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("runtime api: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errors.New("runtime api: " + url + ": " + resp.Status)
	}
	return nil
}
