//go:build !linux

package probes

import (
	"context"
	"errors"
	"time"
)

// measureHopLimit needs Linux's IP_MINTTL; elsewhere the check is NOT_AVAILABLE.
func measureHopLimit(context.Context, string, time.Duration) (int, error) {
	return 0, errors.New("measuring the hop limit on the wire needs Linux (IP_MINTTL)")
}
