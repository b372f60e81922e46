//go:build !linux

package metadata

import (
	"context"
	"net"
)

// DialContext dials addr with a net.Dialer: polling and MinTTL are Linux's.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.Timeout}
	return nd.DialContext(ctx, network, addr)
}

// DropsCounted: only Linux's sockets say what they dropped.
func DropsCounted() bool { return false }
