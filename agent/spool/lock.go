package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ec2sec/ec2sec/internal/safefile"
)

// Lock is an exclusive lock on a file, held across processes, so a daemon and a
// `scan --report` never send the same spool batch at once.
type Lock struct{ f *os.File }

// Acquire takes the lock on path (created 0600), waiting until ctx is done. The lock file is
// never a symlink (which would create a file where its maker points), a FIFO or another
// user's file (safefile.Agent).
func Acquire(ctx context.Context, path string) (*Lock, error) {
	f, _, err := safefile.Open(path, os.O_RDWR|os.O_CREATE, 0o600, safefile.Agent)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if ok {
			return &Lock{f}, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: another ec2sec holds it: %w", path, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the lock
	l.f = nil
	return err
}

// TryAcquire takes the lock on path if no other process holds it: (nil, nil) when one does.
func TryAcquire(path string) (*Lock, error) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errHeld) // one try: Acquire tries before it looks at ctx
	l, err := Acquire(ctx, path)
	if errors.Is(err, errHeld) {
		return nil, nil
	}
	return l, err
}

var errHeld = errors.New("held")

// Held reports whether a process holds the lock on path, taking it (shared) for no longer
// than the look: a reader's way to tell a live writer from one that died. A missing file is
// not held.
func Held(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close() // closing drops the shared lock, if it was taken
	held, err := heldExclusive(f)
	return err == nil && held
}
