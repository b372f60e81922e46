package forwarder

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/agent/sink"
	"github.com/ec2sec/ec2sec/internal/testca"
	"github.com/ec2sec/ec2sec/probes"
)

// FuzzParseSignedData: any bytes are parsed or refused, never a panic or a hang; what parses
// never verifies against a key that did not sign it.
func FuzzParseSignedData(f *testing.F) {
	ca := testca.New(f, "aws")
	doc := testca.Document(instA, acct, region)
	for _, o := range []testca.Options{{}, {Detached: true}, {NoAttributes: true}, {EmbedCert: true}} {
		f.Add(ca.SignDER(f, []byte(doc), o))
	}
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x00, 0x00, 0x00, 0x00})
	other := testca.New(f, "other")
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := ParseSignedData(b)
		if err != nil {
			return
		}
		if sd.Verify([]byte(doc), []*x509Cert{other.Cert}) == nil {
			t.Fatal("verified against a key that signed nothing")
		}
	})
}

// FuzzHandle: any invocation body, including subscription payloads whose gzip JSON is
// mutated, is handled without a panic, and nothing unsigned is ever imported.
func FuzzHandle(f *testing.F) {
	ca := testca.New(f, "aws")
	doc := testca.Document(instA, acct, region)
	proof := sink.Proof{Document: doc, RSA2048: ca.Sign(f, doc, testca.Options{})}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rec := record(instA, "public-ipv4", probes.Failed, at)
	f.Add(SubscriptionEvent(payload(instA, fuzzEvent(proof, rec))))
	f.Add(KinesisEvent(payload(instA, fuzzEvent(proof, rec)), payload(instB, fuzzEvent(proof, rec))))
	f.Add(SubscriptionEvent(&LogsData{MessageType: "CONTROL_MESSAGE"}))
	f.Add(EncodePayload(payload(instA, fuzzEvent(proof, rec))))
	f.Add([]byte(`{"awslogs":{"data":""}}`))
	var imported atomic.Int64
	fw := &Forwarder{
		Config:   Config{Verify: PKCS7Verifier(Trust{region: {ca.Cert}}), HubAccount: acct, HubRegion: region, Partition: "aws"},
		Importer: &Importer{API: countingHub{&imported}, Limiter: NewLimiter(1e9, 1e9, RealClock), Clock: RealClock, Log: slog.New(slog.DiscardHandler)},
		Log:      slog.New(slog.DiscardHandler),
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, _ := fw.Handle(context.Background(), b)
		if res.Imported > 0 && res.Events == 0 {
			t.Fatal("imported without a findings event")
		}
		// Raw gzip payloads too, as a Kinesis record would carry them.
		if d, err := DecodePayload(b); err == nil {
			fw.Handle(context.Background(), KinesisEvent(d))
		}
	})
}
