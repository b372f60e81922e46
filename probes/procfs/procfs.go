// Package procfs reads the few things ec2sec needs from a procfs directory (the host's /proc
// or a fixture tree shaped like it): process ids, names, executables, owners and bounded
// reads of per-process files. Every read is bounded; a process that exits mid-read is simply
// gone (fs.ErrNotExist), never an error worth more than a skip.
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// FS is a procfs directory. FS{Dir: d} works; New also learns what reads may skip.
type FS struct {
	Dir string

	// kernel: Dir is a mounted procfs, whose files are the kernel's and all regular, so not
	// even an empty read needs an fstat to tell it from a FIFO.
	kernel bool
}

// New returns the procfs directory dir, having asked its filesystem (once, for the many
// reads to come) what the reads may skip.
func New(dir string) FS {
	p := FS{Dir: dir}
	p.kernel = isProcfs(dir)
	return p
}

// PIDs returns the numeric entries of the procfs directory, ascending.
func (p FS) PIDs() ([]int, error) {
	d, err := os.Open(p.Dir)
	if err != nil {
		return nil, fmt.Errorf("open procfs %s: %w", p.Dir, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list procfs %s: %w", p.Dir, err)
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// Path returns the path of a file of a process, e.g. Path(42, "environ").
func (p FS) Path(pid int, name string) string {
	return filepath.Join(p.Dir, strconv.Itoa(pid), name)
}

// ReadFile reads at most limit bytes of a procfs file (relative to the procfs dir, e.g.
// "net/tcp" or "42/environ"). truncated reports that there was more. Procfs files report
// size 0, so this reads until EOF or the limit.
func (p FS) ReadFile(name string, limit int64) (data []byte, truncated bool, err error) {
	return readFile(filepath.Join(p.Dir, name), limit, nil, false, p.kernel)
}

// Environ reads at most limit bytes of the process's environment (NUL-separated) into buf
// (reused from its start, grown as needed), for a caller reading every process's in turn.
func (p FS) Environ(pid int, limit int64, buf []byte) (data []byte, truncated bool, err error) {
	return readFile(p.Path(pid, "environ"), limit, buf, true, p.kernel)
}

// Comm returns the process's command name (comm), without the trailing newline.
func (p FS) Comm(pid int) (string, error) {
	b, _, err := readFile(p.Path(pid, "comm"), 256, nil, true, p.kernel)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Exe returns the target of the process's exe link ("" when unreadable, as for kernel
// threads or without CAP_SYS_PTRACE).
func (p FS) Exe(pid int) string {
	t, err := os.Readlink(p.Path(pid, "exe"))
	if err != nil {
		return ""
	}
	return t
}

// Cmdline returns the process's arguments (NUL-separated in procfs), at most 64 KiB of them.
func (p FS) Cmdline(pid int) ([]string, error) {
	b, _, err := p.ReadFile(filepath.Join(strconv.Itoa(pid), "cmdline"), 64<<10)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil, nil
	}
	return strings.Split(string(b), "\x00"), nil
}

// Status holds the fields of /proc/<pid>/status that ec2sec uses.
type Status struct {
	Name string
	PPID int
	UID  int // real uid
	EUID int // effective uid
}

// ReadStatus parses the process's status file.
func (p FS) ReadStatus(pid int) (Status, error) {
	b, _, err := p.ReadFile(filepath.Join(strconv.Itoa(pid), "status"), 16<<10)
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(b)
}

// ParseStatus parses the text of a /proc/<pid>/status file.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	var sawUID bool
	for line := range bytes.Lines(b) {
		k, v, ok := strings.Cut(strings.TrimSpace(string(line)), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			s.Name = v
		case "PPid":
			s.PPID, _ = strconv.Atoi(v)
		case "Uid":
			f := strings.Fields(v)
			if len(f) < 2 {
				return s, errors.New("status: malformed Uid line")
			}
			var err1, err2 error
			s.UID, err1 = strconv.Atoi(f[0])
			s.EUID, err2 = strconv.Atoi(f[1])
			if err1 != nil || err2 != nil {
				return s, errors.New("status: malformed Uid line")
			}
			sawUID = true
		}
	}
	if !sawUID {
		return s, errors.New("status: no Uid line")
	}
	return s, nil
}

// Kernel reports whether the directory is a mounted procfs (the kernel's own files), rather
// than a tree of files someone made (a fixture, a copy): only then may a reader that does not
// guard against FIFOs and endless files (gopsutil) be pointed at it.
func (p FS) Kernel() bool { return p.kernel }
