package imdswatch

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func rawEvent(kind, family byte, addr netip.Addr, port uint16, comm string) []byte {
	b := make([]byte, EventSize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], 123)
	le.PutUint64(b[8:], 4097)
	le.PutUint32(b[32:], 42)
	le.PutUint32(b[36:], 41)
	le.PutUint32(b[48:], 41)
	le.PutUint32(b[52:], 1000)
	binary.BigEndian.PutUint16(b[58:], port)
	b[60], b[61], b[62], b[63] = family, kind, FlagCreds, 1
	a := addr.As16()
	copy(b[64:80], a[:])
	copy(b[80:96], comm)
	return b
}

func TestDecodeEvent(t *testing.T) {
	e, err := DecodeEvent(rawEvent(3, 2, netip.MustParseAddr("169.254.169.254"), 80, "curl"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != KindV1 || e.Dest.String() != "169.254.169.254:80" || e.Comm != "curl" || e.Tgid != 41 || e.SendUID != 1000 || e.Flags&FlagCreds == 0 {
		t.Fatalf("decoded %+v", e)
	}
	e, err = DecodeEvent(rawEvent(2, 10, netip.MustParseAddr("fd00:ec2::254"), 80, "0123456789abcdef"))
	if err != nil || e.Dest.String() != "[fd00:ec2::254]:80" || e.Comm != "0123456789abcdef" {
		t.Fatalf("decoded %+v, %v", e, err)
	}
	for _, bad := range [][]byte{nil, make([]byte, EventSize-1), rawEvent(0, 2, netip.IPv4Unspecified(), 0, ""), rawEvent(3, 7, netip.IPv4Unspecified(), 0, "")} {
		if _, err := DecodeEvent(bad); err == nil {
			t.Errorf("DecodeEvent(%x) accepted", bad)
		}
	}
}

// FuzzDecodeEvent: any record decodes or fails cleanly, and what decodes is consistent.
func FuzzDecodeEvent(f *testing.F) {
	f.Add(rawEvent(1, 2, netip.MustParseAddr("127.0.0.1"), 8080, "aws"))
	f.Add(rawEvent(3, 10, netip.MustParseAddr("fd00:ec2::254"), 80, strings.Repeat("x", 16)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b)
		if err != nil {
			return
		}
		if len(b) < EventSize || e.Kind < KindToken || e.Kind > KindV1 || len(e.Comm) > 16 || !e.Dest.IsValid() {
			t.Fatalf("accepted %x as %+v", b, e)
		}
		if strings.IndexByte(e.Comm, 0) >= 0 {
			t.Fatalf("comm with NUL: %q", e.Comm)
		}
	})
}

func TestParseCgroup(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for _, tc := range []struct{ path, ctr, rt, unit string }{
		{"/system.slice/docker-" + id + ".scope", id, "docker", ""},
		{"/docker/" + id, id, "docker", ""},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-" + id + ".scope", id, "containerd", ""},
		{"/kubepods/besteffort/pod0a1b2c3d-0000-1111-2222-333344445555/" + id, id, "containerd", ""},
		{"/machine.slice/libpod-" + id + ".scope/container", id, "podman", ""},
		{"/ecs/0123456789abcdef0123456789abcdef/" + id, id, "ecs", ""},
		{"/system.slice/amazon-ssm-agent.service", "", "", "amazon-ssm-agent.service"},
		{"/user.slice/user-1000.slice/session-3.scope", "", "", "session-3.scope"},
		{"/", "", "", ""},
	} {
		c, r, u := ParseCgroup(tc.path)
		if c != tc.ctr || r != tc.rt || u != tc.unit {
			t.Errorf("ParseCgroup(%q) = %q %q %q, want %q %q %q", tc.path, c, r, u, tc.ctr, tc.rt, tc.unit)
		}
	}
}

func TestRedactArgs(t *testing.T) {
	in := []string{"curl", "-H", "X-aws-ec2-metadata-token: AQAEAexampletokenvalue==", "--password", "hunter2", "TOKEN=abc",
		"wJalrXUtnFEMI0K7MDENGbPxRfiCYEXAMPLEKEY", "AbCd/EfGh1234+IjKlMnOp/QrStUvWx", "http://169.254.169.254/latest/meta-data/", "--verbose"}
	got := strings.Join(RedactArgs(in), " ")
	for _, leak := range []string{"AQAEAexample", "hunter2", "abc", "wJalrXUtnFEMI", "AbCd/EfGh"} {
		if strings.Contains(got, leak) {
			t.Errorf("RedactArgs kept %q: %s", leak, got)
		}
	}
	for _, keep := range []string{"curl", "http://169.254.169.254/latest/meta-data/", "--verbose", "--password"} {
		if !strings.Contains(got, keep) {
			t.Errorf("RedactArgs dropped %q: %s", keep, got)
		}
	}
}

func TestEndpointDest(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:1234":    "127.0.0.1:1234",
		"http://[::1]:8080/":       "[::1]:8080",
		"http://192.0.2.1":         "192.0.2.1:80",
		"http://[fd00:ec2::254]":   "[fd00:ec2::254]:80",
		"http://imds.example:1234": "",
		"":                         "",
	} {
		d, ok := EndpointDest(in)
		if (want == "") == ok || (ok && d.String() != want) {
			t.Errorf("EndpointDest(%q) = %v %v, want %q", in, d, ok, want)
		}
	}
	if n := len(Dests("http://169.254.169.254")); n != 2 {
		t.Errorf("Dests of the default endpoint: %d, want 2 (no duplicate)", n)
	}
}

func TestTableWindowAndCap(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tab := NewTable(nil, clock)
	for i := range MaxCallers + 5 {
		now = now.Add(time.Second)
		tab.Add(Event{Kind: KindV1}, Identity{Exe: "/bin/x", UID: uint32(i), Netns: "host"}, "169.254.169.254:80")
	}
	s := tab.Snapshot()
	if len(s.Callers) != MaxCallers || s.Evicted != 5 {
		t.Fatalf("callers %d evicted %d", len(s.Callers), s.Evicted)
	}
	// A restart continues the history; eight days later the old callers are gone and only
	// the time actually watched counts.
	tab.Stop()
	prev := tab.Snapshot()
	now = now.Add(8 * 24 * time.Hour)
	tab2 := NewTable(prev, clock)
	now = now.Add(time.Hour)
	s = tab2.Snapshot()
	if len(s.Callers) != 0 || s.Observed(now) != time.Hour || !s.Running {
		t.Fatalf("after 8 days: %d callers, observed %s", len(s.Callers), s.Observed(now))
	}
}
