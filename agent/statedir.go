package agent

import (
	"fmt"
	"os"
)

// privateDir creates dir 0700, or tightens an existing one to 0700: the state dir holds the
// fingerprint key, the reported state and the spool, which no other user may read or swap.
// A symlink or a non-directory there is refused rather than followed.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state dir %s: not a directory (a symlink is not accepted)", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("state dir %s: tighten to 0700: %w", dir, err)
		}
	}
	return nil
}
