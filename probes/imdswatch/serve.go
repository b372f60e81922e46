package imdswatch

import (
	"errors"
	"net/netip"
)

// Source is what Serve reads events from: a *Watcher, or a test's feed.
type Source interface {
	Read() (Event, error)
	Stats() (Stats, error)
}

// Serve reads events until src is closed, enriches each into its caller and adds it to t;
// after, when set, is called after each (the daemon saves, the live view redraws). It
// returns nil when src was closed, else the read error.
func Serve(src Source, en *Enricher, t *Table, after func(Event, Identity)) error {
	for {
		e, err := src.Read()
		if errors.Is(err, ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		id := en.Enrich(e)
		t.Add(e, id, e.Dest.String())
		if st, err := src.Stats(); err == nil {
			t.SetDropped(st.Dropped)
		}
		if after != nil {
			after(e, id)
		}
	}
}

// EndpointDest returns the address of an endpoint URL such as
// AWS_EC2_METADATA_SERVICE_ENDPOINT when its host is an IP literal (port 80 when none is
// given), for Options.Dests; a host name is not watched (it is resolved elsewhere).
func EndpointDest(endpoint string) (netip.AddrPort, bool) {
	u := endpoint
	for _, p := range []string{"http://", "https://"} {
		if len(u) > len(p) && u[:len(p)] == p {
			u = u[len(p):]
			break
		}
	}
	for i := 0; i < len(u); i++ {
		if u[i] == '/' {
			u = u[:i]
			break
		}
	}
	if ap, err := netip.ParseAddrPort(u); err == nil {
		return ap, true
	}
	if len(u) > 1 && u[0] == '[' && u[len(u)-1] == ']' {
		u = u[1 : len(u)-1]
	}
	if a, err := netip.ParseAddr(u); err == nil {
		return netip.AddrPortFrom(a, 80), true
	}
	return netip.AddrPort{}, false
}

// Dests returns DefaultDests plus the IMDS endpoint override, when it is an IP literal.
func Dests(endpoint string) []netip.AddrPort {
	ds := append([]netip.AddrPort(nil), DefaultDests...)
	if d, ok := EndpointDest(endpoint); ok {
		for _, x := range ds {
			if x == d {
				return ds
			}
		}
		ds = append(ds, d)
	}
	return ds
}
