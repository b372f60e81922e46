//go:build !linux

package procfs

import (
	"fmt"
	"io"
	"os"
)

// readFile reads at most limit bytes of a regular file and says whether there was more.
func readFile(name string, limit int64) ([]byte, bool, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|noFollowNonblock, 0)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("%s: not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return data[:limit], true, nil
	}
	return data, false, nil
}
