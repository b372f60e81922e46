package forwarder

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/securityhub"
	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/sink"
)

type x509Cert = x509.Certificate

func x509MarshalPKCS1(k *rsa.PrivateKey) []byte { return x509.MarshalPKCS1PrivateKey(k) }

func sinkProof(doc, sig string) sink.Proof { return sink.Proof{Document: doc, RSA2048: sig} }

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func fuzzEvent(p sink.Proof, recs ...asff.Record) LogEvent {
	ev := sink.FindingsEvent{Type: sink.FindingsEventType, Version: sink.FindingsEventVersion, Identity: p}
	for _, r := range recs {
		b, _ := json.Marshal(r)
		ev.Findings = append(ev.Findings, b)
	}
	b, _ := json.Marshal(ev)
	return LogEvent{ID: "1", Timestamp: 1, Message: string(b)}
}

// countingHub accepts every finding and counts them.
type countingHub struct{ n *atomic.Int64 }

func (h countingHub) BatchImportFindings(_ context.Context, in *securityhub.BatchImportFindingsInput, _ ...func(*securityhub.Options)) (*securityhub.BatchImportFindingsOutput, error) {
	h.n.Add(int64(len(in.Findings)))
	return &securityhub.BatchImportFindingsOutput{}, nil
}

func discardLogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }
