package agent

import (
	"fmt"

	"github.com/ec2sec/ec2sec/internal/safefile"
)

// privateDir creates dir 0700, or tightens an existing one to 0700: the state dir holds the
// fingerprint key, the reported state and the spool, which no other user may read or swap.
// A symlink, a non-directory or a directory another user owns is refused rather than used
// (safefile.PrivateDir): an attacker who made the state dir would otherwise pick the
// fingerprint key, plant spool batches and point the lock where they like.
func privateDir(dir string) error {
	if err := safefile.PrivateDir(dir); err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	return nil
}
