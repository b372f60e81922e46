package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	"github.com/aws/aws-sdk-go-v2/service/securityhub/types"
)

// Security Hub limits.
const (
	// MaxFindingsPerCall is BatchImportFindings' batch limit.
	MaxFindingsPerCall = 100
	// MaxFindingBytes is the largest finding BatchImportFindings accepts.
	MaxFindingBytes = 240 * 1024
	// MaxCallBytes keeps one request well under API Gateway-style payload limits.
	MaxCallBytes = 5 << 20
	// MinCallInterval spaces our calls: BatchImportFindings allows 10 TPS (burst 30) per
	// account and region, shared with every other producer there; we use at most half.
	MinCallInterval = 200 * time.Millisecond
)

// SecurityHubAPI is the part of the Security Hub client the sink uses.
type SecurityHubAPI interface {
	BatchImportFindings(context.Context, *securityhub.BatchImportFindingsInput, ...func(*securityhub.Options)) (*securityhub.BatchImportFindingsOutput, error)
}

// SecurityHub imports findings. Findings are upserts by id, so re-sending one (after a crash
// between the call and the spool update) changes nothing.
type SecurityHub struct {
	api      SecurityHubAPI
	log      *slog.Logger
	interval time.Duration

	mu   sync.Mutex
	last time.Time
}

// NewSecurityHub returns a sink with the client built from cfg.
func NewSecurityHub(cfg aws.Config, log *slog.Logger) *SecurityHub {
	return NewSecurityHubAPI(securityhub.NewFromConfig(cfg), log)
}

// NewSecurityHubAPI is NewSecurityHub over any implementation of the API.
func NewSecurityHubAPI(api SecurityHubAPI, log *slog.Logger) *SecurityHub {
	return &SecurityHub{api: api, log: log, interval: MinCallInterval}
}

// Name implements Sink.
func (s *SecurityHub) Name() string { return "security_hub" }

// SetMinInterval changes how far apart calls are spaced (MinCallInterval by default); fleet
// simulations that compress time scale it with their clock.
func (s *SecurityHub) SetMinInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interval = d
}

// pace keeps calls MinCallInterval apart.
func (s *SecurityHub) pace(ctx context.Context) error {
	s.mu.Lock()
	wait := s.interval - time.Since(s.last)
	s.mu.Unlock()
	if err := sleep(ctx, wait); err != nil {
		return err
	}
	s.mu.Lock()
	s.last = time.Now()
	s.mu.Unlock()
	return nil
}

// retryable tells FailedFindings error codes worth another attempt from those that will
// fail the same way again.
func retryable(code string) bool {
	c := strings.ToLower(code)
	for _, s := range []string{"throttl", "toomanyrequests", "internal", "serviceunavailable", "unavailable", "timeout", "limitexceeded"} {
		if strings.Contains(c, s) {
			return true
		}
	}
	return false
}

// Send implements Sink: at most 100 findings per call; FailedFindings map back to their
// items, retryable ones as Retry, the others Rejected and logged.
func (s *SecurityHub) Send(ctx context.Context, items []json.RawMessage) ([]Outcome, error) {
	out := make([]Outcome, len(items))
	type fnd struct {
		i    int
		id   string
		f    types.AwsSecurityFinding
		size int
	}
	var fs []fnd
	for i, raw := range items {
		var f types.AwsSecurityFinding
		// The spool holds ASFF JSON, whose names are the SDK's field names.
		if err := json.Unmarshal(raw, &f); err != nil || f.Id == nil || len(raw) > MaxFindingBytes {
			out[i] = Rejected
			s.log.Error("security hub: dropping a malformed or oversized spooled finding", "bytes", len(raw))
			continue
		}
		fs = append(fs, fnd{i, *f.Id, f, len(raw)})
	}
	for start := 0; start < len(fs); {
		end, size := start, 0
		for end < len(fs) && end-start < MaxFindingsPerCall && (end == start || size+fs[end].size <= MaxCallBytes) {
			size += fs[end].size
			end++
		}
		batch := fs[start:end]
		start = end
		in := &securityhub.BatchImportFindingsInput{}
		for _, f := range batch {
			in.Findings = append(in.Findings, f.f)
		}
		if err := s.pace(ctx); err != nil {
			return out, err
		}
		res, err := s.api.BatchImportFindings(ctx, in)
		if err != nil {
			return out, fmt.Errorf("batch import findings: %w", err)
		}
		failed := map[string]types.ImportFindingsError{}
		for _, e := range res.FailedFindings {
			failed[aws.ToString(e.Id)] = e
		}
		nretry, nrej := 0, 0
		for _, f := range batch {
			e, bad := failed[f.id]
			switch {
			case !bad:
				out[f.i] = Accepted
			case retryable(aws.ToString(e.ErrorCode)):
				out[f.i] = Retry
				nretry++
			default:
				out[f.i] = Rejected
				nrej++
				s.log.Error("security hub refused a finding", "id", f.id, "code", aws.ToString(e.ErrorCode), "message", aws.ToString(e.ErrorMessage))
			}
		}
		if nretry > 0 {
			s.log.Warn("security hub could not import some findings for now; will retry", "count", nretry)
			return out, fmt.Errorf("batch import findings: %d findings failed with a retryable error", nretry)
		}
	}
	return out, nil
}
