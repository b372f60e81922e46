//go:build !(linux && (amd64 || arm64))

package imdswatch

import (
	"errors"
	"fmt"
	"runtime"
)

// Watcher is Linux-only; elsewhere Load says why.
type Watcher struct{}

// Load fails: the watcher needs Linux's cgroup BPF hooks.
func Load(Options) (*Watcher, error) {
	return nil, fmt.Errorf("%w: eBPF hooks are Linux-only (this is %s)", ErrNotAvailable, runtime.GOOS)
}

// ErrClosed is what Read returns once the watcher is closed.
var ErrClosed = errors.New("imdswatch: watcher closed")

// Read never returns an event here.
func (*Watcher) Read() (Event, error) { return Event{}, ErrClosed }

// Stats has nothing to read here.
func (*Watcher) Stats() (Stats, error) { return Stats{}, nil }

// Cgroup is empty here.
func (*Watcher) Cgroup() string { return "" }

// Close does nothing here.
func (*Watcher) Close() error { return nil }

func ownNetnsCookie() uint64 { return 0 }
