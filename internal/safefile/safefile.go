// Package safefile opens the agent's own files (config, keys, state, lock, spool) so that a
// local user cannot hand it theirs: never through a symlink (O_NOFOLLOW), never waiting on a
// FIFO or device (O_NONBLOCK, then only a regular file is accepted), and with owner and mode
// checked on the opened descriptor (fstat), so a file swapped after a path check changes
// nothing. On Windows, where these flags and owners do not exist, only the type is checked.
package safefile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Trust says who may own a file the agent reads.
type Trust int

const (
	// Agent: owned by the agent's own user and writable by nobody else (its state dir, the
	// fingerprint key, state, lock and spool files).
	Agent Trust = iota
	// Admin: owned by root or the agent's user, and not group- or world-writable (config
	// files and a fleet key, as sshd's StrictModes).
	Admin
)

// Open opens path with flag (plus O_NOFOLLOW, O_NONBLOCK and O_CLOEXEC; O_CREATE makes a new
// file with perm) and returns it with its fstat, once it is a regular file trust accepts.
func Open(path string, flag int, perm fs.FileMode, trust Trust) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, flag|noFollow|nonBlock, perm)
	if err != nil {
		if isLoop(err) {
			return nil, nil, fmt.Errorf("%s: a symlink is not accepted", path)
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = Check(path, fi, trust)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// Check says why fi, the fstat of path, is not a regular file trust accepts.
func Check(path string, fi fs.FileInfo, trust Trust) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%s)", path, kind(fi.Mode()))
	}
	return checkOwner(path, fi, trust)
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	}
	return m.Type().String()
}

// PrivateDir creates dir 0700, or accepts an existing one only when it is a directory (not a
// symlink, except the one systemd makes for StateDirectory= under DynamicUser=yes) owned by
// the agent's user, and then tightens it to 0700: the state dir holds the
// fingerprint key, the reported state and the spool, which no other user may read, plant or
// swap. A directory another user owns is refused, never adopted.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if !systemdStateLink(dir, fi) {
			return fmt.Errorf("%s: not a directory (a symlink is not accepted)", dir)
		}
		// The unit's StateDirectory= under DynamicUser=yes: check the real directory.
		dir = filepath.Join(filepath.Dir(dir), "private", filepath.Base(dir))
	}
	d, err := os.OpenFile(dir, os.O_RDONLY|noFollow|nonBlock|directory, 0)
	if err != nil {
		if isLoop(err) || isNotDir(err) {
			return fmt.Errorf("%s: not a directory (a symlink is not accepted)", dir)
		}
		return err
	}
	defer d.Close()
	fi, err := d.Stat()
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory (a symlink is not accepted)", dir)
	}
	if err := checkOwnerOnly(dir, fi); err != nil {
		return err
	}
	if fi.Mode().Perm() != 0o700 {
		if err := d.Chmod(0o700); err != nil {
			return fmt.Errorf("tighten to 0700: %w", err)
		}
	}
	return nil
}
