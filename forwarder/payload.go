package forwarder

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Bounds on what one invocation may make the forwarder hold: Lambda hands it at most 6 MB
// (a Kinesis batch, base64), CloudWatch Logs compresses about tenfold, and no log event is
// larger than 256 KB.
const (
	MaxInvocationBytes = 8 << 20
	MaxPayloadBytes    = 16 << 20 // one subscription payload, decompressed
	MaxLogEvents       = 20_000   // events of one payload
	MaxRecords         = 10_000   // Kinesis records of one invocation
)

// LogsData is a CloudWatch Logs subscription payload, decompressed.
type LogsData struct {
	MessageType         string     `json:"messageType"` // DATA_MESSAGE or CONTROL_MESSAGE
	Owner               string     `json:"owner"`
	LogGroup            string     `json:"logGroup"`
	LogStream           string     `json:"logStream"`
	SubscriptionFilters []string   `json:"subscriptionFilters"`
	LogEvents           []LogEvent `json:"logEvents"`
}

// LogEvent is one event of a subscription payload.
type LogEvent struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}

// event is what Lambda hands the forwarder: a subscription's own invocation
// ({"awslogs":{"data":...}}) or a Kinesis batch whose records are subscription payloads.
type event struct {
	AWSLogs *struct {
		Data string `json:"data"`
	} `json:"awslogs"`
	Records []struct {
		Kinesis struct {
			Data           string `json:"data"`
			SequenceNumber string `json:"sequenceNumber"`
		} `json:"kinesis"`
	} `json:"Records"`
}

// DecodeEvent returns the subscription payloads (still compressed) an invocation carries.
func DecodeEvent(b []byte) ([][]byte, error) {
	if len(b) > MaxInvocationBytes {
		return nil, fmt.Errorf("invocation of %d bytes, more than %d", len(b), MaxInvocationBytes)
	}
	var ev event
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("invocation is not JSON: %w", err)
	}
	var out [][]byte
	switch {
	case ev.AWSLogs != nil:
		raw, err := base64.StdEncoding.DecodeString(ev.AWSLogs.Data)
		if err != nil {
			return nil, fmt.Errorf("awslogs.data is not base64: %w", err)
		}
		out = append(out, raw)
	case len(ev.Records) > 0:
		if len(ev.Records) > MaxRecords {
			return nil, fmt.Errorf("%d records, more than %d", len(ev.Records), MaxRecords)
		}
		for i, r := range ev.Records {
			raw, err := base64.StdEncoding.DecodeString(r.Kinesis.Data)
			if err != nil {
				return nil, fmt.Errorf("record %d: kinesis.data is not base64: %w", i, err)
			}
			out = append(out, raw)
		}
	default:
		return nil, errors.New("neither a CloudWatch Logs subscription nor a Kinesis event")
	}
	return out, nil
}

// DecodePayload decompresses and parses one subscription payload (gzip JSON), refusing more
// than MaxPayloadBytes of JSON or MaxLogEvents events.
func DecodePayload(gz []byte) (*LogsData, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("payload is not gzip: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, MaxPayloadBytes+1))
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if len(b) > MaxPayloadBytes {
		return nil, fmt.Errorf("payload decompresses to more than %d bytes", MaxPayloadBytes)
	}
	var d LogsData
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("payload is not JSON: %w", err)
	}
	if len(d.LogEvents) > MaxLogEvents {
		return nil, fmt.Errorf("payload has %d events, more than %d", len(d.LogEvents), MaxLogEvents)
	}
	return &d, nil
}

// EncodePayload builds a subscription payload as CloudWatch Logs sends it (gzip JSON); tests
// and simulations use it, with base64 on top for an invocation.
func EncodePayload(d *LogsData) []byte {
	var buf bytes.Buffer
	zw, _ := gzipWriters.Get().(*gzip.Writer)
	if zw == nil {
		zw = gzip.NewWriter(&buf)
	} else {
		zw.Reset(&buf)
	}
	json.NewEncoder(zw).Encode(d)
	zw.Close()
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// gzipWriters keeps compressors for EncodePayload: each costs about a megabyte to make.
var gzipWriters sync.Pool

// SubscriptionEvent is the Lambda event of a subscription delivering d.
func SubscriptionEvent(d *LogsData) []byte {
	b, _ := json.Marshal(map[string]any{"awslogs": map[string]string{"data": base64.StdEncoding.EncodeToString(EncodePayload(d))}})
	return b
}

// KinesisEvent is the Lambda event of a Kinesis batch of subscription payloads.
func KinesisEvent(ds ...*LogsData) []byte {
	type rec struct {
		Kinesis struct {
			Data           string `json:"data"`
			SequenceNumber string `json:"sequenceNumber"`
		} `json:"kinesis"`
		EventSource string `json:"eventSource"`
	}
	var rs []rec
	for i, d := range ds {
		var r rec
		r.Kinesis.Data = base64.StdEncoding.EncodeToString(EncodePayload(d))
		r.Kinesis.SequenceNumber = fmt.Sprint(i + 1)
		r.EventSource = "aws:kinesis"
		rs = append(rs, r)
	}
	b, _ := json.Marshal(map[string]any{"Records": rs})
	return b
}
