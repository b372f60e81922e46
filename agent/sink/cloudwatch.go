package sink

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// PutLogEvents limits (CloudWatch Logs quotas).
const (
	MaxBatchEvents = 10_000
	MaxBatchBytes  = 1_048_576
	EventOverhead  = 26 // bytes counted per event on top of its UTF-8 message
	// MaxEventBytes bounds one event's message; the agent's events are far smaller.
	MaxEventBytes = 256*1024 - EventOverhead
	MaxBatchSpan  = 24 * time.Hour
	// CloudWatch Logs refuses events older than 14 days or more than 2 hours in the future.
	MaxEventAge    = 14 * 24 * time.Hour
	MaxEventFuture = 2 * time.Hour
)

// LogEvent is one spooled CloudWatch Logs event.
type LogEvent struct {
	Timestamp int64  `json:"timestamp"` // ms since the epoch
	Message   string `json:"message"`
}

// CloudWatchAPI is the part of the CloudWatch Logs client the sink uses.
type CloudWatchAPI interface {
	CreateLogGroup(context.Context, *cloudwatchlogs.CreateLogGroupInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error)
	CreateLogStream(context.Context, *cloudwatchlogs.CreateLogStreamInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error)
	PutLogEvents(context.Context, *cloudwatchlogs.PutLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error)
}

// CloudWatch writes events to one log group and stream, creating them when missing.
type CloudWatch struct {
	api           CloudWatchAPI
	group, stream string
	log           *slog.Logger
	now           func() time.Time

	mu    sync.Mutex
	ready bool // group and stream are known to exist
}

// NewCloudWatch returns a sink writing to group/stream with the client built from cfg.
func NewCloudWatch(cfg aws.Config, group, stream string, log *slog.Logger) *CloudWatch {
	return NewCloudWatchAPI(cloudwatchlogs.NewFromConfig(cfg), group, stream, log)
}

// NewCloudWatchAPI is NewCloudWatch over any implementation of the API.
func NewCloudWatchAPI(api CloudWatchAPI, group, stream string, log *slog.Logger) *CloudWatch {
	return &CloudWatch{api: api, group: group, stream: stream, log: log, now: time.Now}
}

// Name implements Sink.
func (c *CloudWatch) Name() string { return "cloudwatch_logs" }

// Stream returns the log stream name.
func (c *CloudWatch) Stream() string { return c.stream }

// ensure creates the stream, and the group when the stream cannot be created for want of
// it. A role that may write but not create (the group made by an administrator) is common: a
// refused create is logged and the write tried anyway.
func (c *CloudWatch) ensure(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready {
		return nil
	}
	var exists *types.ResourceAlreadyExistsException
	var missing *types.ResourceNotFoundException
	stream := &cloudwatchlogs.CreateLogStreamInput{LogGroupName: &c.group, LogStreamName: &c.stream}
	_, err := c.api.CreateLogStream(ctx, stream)
	if errors.As(err, &missing) {
		if _, err := c.api.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: &c.group}); err != nil && !errors.As(err, &exists) {
			return fmt.Errorf("create log group %s: %w", c.group, err)
		}
		_, err = c.api.CreateLogStream(ctx, stream)
	}
	switch {
	case err == nil, errors.As(err, &exists):
	case errors.As(err, &missing):
		return fmt.Errorf("create log stream %s/%s: %w", c.group, c.stream, err)
	default:
		// Only a definite refusal (a 4xx answer that is not throttling: no permission) is
		// worked around; no answer at all (status 0: reset, refused, timed out), a 5xx or
		// throttling is transient. Taking those for a refusal would mark the stream ready
		// when it may not exist, failing the first writes after an outage.
		var re interface{ HTTPStatusCode() int }
		if !errors.As(err, &re) || re.HTTPStatusCode() < 400 || re.HTTPStatusCode() >= 500 ||
			retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
			return fmt.Errorf("create log stream %s/%s: %w", c.group, c.stream, err) // transient: try again later
		}
		c.log.Warn("cannot create the log stream; writing to it anyway", "group", c.group, "stream", c.stream, "err", err)
	}
	c.ready = true
	return nil
}

// Send implements Sink: it puts the events in chronological batches within PutLogEvents'
// limits and maps RejectedLogEventsInfo back to the items.
func (c *CloudWatch) Send(ctx context.Context, items []json.RawMessage) ([]Outcome, error) {
	out := make([]Outcome, len(items))
	now := c.now()
	var plain, emf []indexed
	rejected := 0
	for i, raw := range items {
		var e LogEvent
		if err := json.Unmarshal(raw, &e); err != nil || e.Message == "" || len(e.Message) > MaxEventBytes {
			out[i] = Rejected
			rejected++
			continue
		}
		t := time.UnixMilli(e.Timestamp)
		if now.Sub(t) > MaxEventAge-time.Hour || t.Sub(now) > MaxEventFuture {
			out[i] = Rejected // CloudWatch would refuse it; sending it again never helps
			rejected++
			continue
		}
		// Embedded Metric Format documents go in calls of their own, marked with the log
		// format header the EMF specification requires; plain events go without it.
		if isEMF(e.Message) {
			emf = append(emf, indexed{i, e})
		} else {
			plain = append(plain, indexed{i, e})
		}
	}
	if rejected > 0 {
		c.log.Warn("cloudwatch logs: dropping events CloudWatch would refuse (malformed, too large, older than 14 days or in the future)", "count", rejected)
	}
	if len(plain)+len(emf) == 0 {
		return out, nil
	}
	if err := c.ensure(ctx); err != nil {
		return out, err
	}
	if err := c.put(ctx, plain, out); err != nil {
		return out, err
	}
	return out, c.put(ctx, emf, out, withEMFHeader)
}

// indexed is an event and its item's index.
type indexed struct {
	i int
	e LogEvent
}

// put sends evs in chronological batches within PutLogEvents' limits and records each
// item's outcome in out, mapping RejectedLogEventsInfo back to the items.
func (c *CloudWatch) put(ctx context.Context, evs []indexed, out []Outcome, opts ...func(*cloudwatchlogs.Options)) error {
	slices.SortStableFunc(evs, func(a, b indexed) int { return cmp.Compare(a.e.Timestamp, b.e.Timestamp) })
	for start := 0; start < len(evs); {
		end, size := start, 0
		for end < len(evs) && end-start < MaxBatchEvents {
			n := len(evs[end].e.Message) + EventOverhead
			if size+n > MaxBatchBytes || time.Duration(evs[end].e.Timestamp-evs[start].e.Timestamp)*time.Millisecond >= MaxBatchSpan {
				break
			}
			size += n
			end++
		}
		batch := evs[start:end]
		start = end
		in := &cloudwatchlogs.PutLogEventsInput{LogGroupName: &c.group, LogStreamName: &c.stream}
		for _, e := range batch {
			in.LogEvents = append(in.LogEvents, types.InputLogEvent{Timestamp: aws.Int64(e.e.Timestamp), Message: aws.String(e.e.Message)})
		}
		res, err := c.api.PutLogEvents(ctx, in, opts...)
		if err != nil {
			var nf *types.ResourceNotFoundException
			if errors.As(err, &nf) { // deleted behind our back: create again next time
				c.mu.Lock()
				c.ready = false
				c.mu.Unlock()
			}
			return fmt.Errorf("put log events to %s/%s: %w", c.group, c.stream, err)
		}
		// TooNew is an inclusive start, TooOld and Expired exclusive ends.
		tooNew, tooOld, expired := len(batch), 0, 0
		if ri := res.RejectedLogEventsInfo; ri != nil {
			if ri.TooNewLogEventStartIndex != nil {
				tooNew = int(*ri.TooNewLogEventStartIndex)
			}
			if ri.TooOldLogEventEndIndex != nil {
				tooOld = int(*ri.TooOldLogEventEndIndex)
			}
			if ri.ExpiredLogEventEndIndex != nil {
				expired = int(*ri.ExpiredLogEventEndIndex)
			}
		}
		nrej := 0
		for k, e := range batch {
			if k >= tooNew || k < tooOld || k < expired {
				out[e.i] = Rejected
				nrej++
			} else {
				out[e.i] = Accepted
			}
		}
		if nrej > 0 {
			ri := res.RejectedLogEventsInfo
			c.log.Warn("cloudwatch logs rejected events (too old, too new or past retention)", "count", nrej,
				"too_new_start", ri.TooNewLogEventStartIndex, "too_old_end", ri.TooOldLogEventEndIndex, "expired_end", ri.ExpiredLogEventEndIndex)
		}
	}
	return nil
}

// EMFHeader marks a PutLogEvents call whose events are Embedded Metric Format documents.
const EMFHeader = "X-Amzn-Logs-Format"

func withEMFHeader(o *cloudwatchlogs.Options) {
	o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue(EMFHeader, "json/emf"))
}

// isEMF reports whether a message is an EMF document: a JSON object with an "_aws" member.
func isEMF(msg string) bool {
	if !strings.Contains(msg, `"_aws"`) {
		return false
	}
	var v struct {
		AWS json.RawMessage `json:"_aws"`
	}
	return json.Unmarshal([]byte(msg), &v) == nil && len(v.AWS) > 0
}
