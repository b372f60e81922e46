//go:build !linux

package hostfs

import "io/fs"

// Elsewhere the userspace walk resolves every name: these say "not handled".

type rootFD struct{}

func openRoot(string) *rootFD { return nil }

func (*rootFD) close() {}

func (*Dir) openDirFD() {}

func (*Dir) fastLstatEntry(string, string) (*Entry, bool, error) { return nil, false, nil }

func (*FS) fastEntry(string) (*Entry, bool, error) { return nil, false, nil }

func (*Entry) fastRead([]byte, int64, bool) ([]byte, bool, fs.FileInfo, bool, error) {
	return nil, false, nil, false, nil
}

// Close is a no-op here: nothing is held.
func (*Entry) Close() error                                          { return nil }
func (*FS) fastStat(string) (fs.FileInfo, bool)                      { return nil, false }
func (*FS) fastReadlink(string) (string, bool)                       { return "", false }
func (*FS) fastReadDir(string, int) ([]fs.DirEntry, bool, error)     { return nil, false, nil }
func (*FS) fastRead(string, int64, bool) ([]byte, bool, bool, error) { return nil, false, false, nil }
func (*FS) fastOpenFile(string) (*File, bool, error)                 { return nil, false, nil }
func (*FS) fastEachName(string, func(string)) (bool, error)          { return false, nil }
