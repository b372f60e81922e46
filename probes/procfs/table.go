package procfs

import (
	"context"
	"fmt"
	"sync"
)

// Proc is one process of a Table.
type Proc struct {
	PID  int
	Comm string // "" when it could not be read (exited, or no permission)
}

// Table is one scan's process list: pids and command names read once and shared by every
// probe that looks for a process by name, instead of each reading thousands of comm files.
// It is safe for concurrent use; callers must not modify what Procs returns.
type Table struct {
	fs       FS
	pidsOnce sync.Once
	pids     []int // listed once for Procs and Sockets
	pidsErr  error
	once     sync.Once
	procs    []Proc
	err      error

	sockMu  sync.Mutex
	sockets *Sockets
}

// pidList lists the processes once, for Procs and Sockets alike.
func (t *Table) pidList() ([]int, error) {
	t.pidsOnce.Do(func() { t.pids, t.pidsErr = t.fs.PIDs() })
	return t.pids, t.pidsErr
}

// NewTable returns the table of the procfs directory dir; nothing is read until Procs.
func NewTable(dir string) *Table { return &Table{fs: New(dir)} }

// FS is the procfs the table reads, for a probe's reads of single processes.
func (t *Table) FS() FS { return t.fs }

// PIDs lists the processes, ascending, once per table (Procs and Sockets use the same
// listing). Callers must not modify the slice.
func (t *Table) PIDs() ([]int, error) { return t.pidList() }

// Procs lists the processes, ascending by pid, reading them on the first call.
func (t *Table) Procs() ([]Proc, error) {
	t.once.Do(func() {
		pids, err := t.pidList()
		if err != nil {
			t.err = err
			return
		}
		t.procs = make([]Proc, 0, len(pids))
		for _, pid := range pids {
			comm, _ := t.fs.Comm(pid)
			t.procs = append(t.procs, Proc{PID: pid, Comm: comm})
		}
	})
	return t.procs, t.err
}

// Sockets is the TCP listeners of a procfs and the processes that hold each (by socket inode).
type Sockets struct {
	Listeners  []Listener
	Owners     map[uint64][]int
	Unreadable int // processes whose fds could not be listed
}

// Sockets reads the LISTEN rows and walks every process's fds for their owners, once per
// table: the walk over thousands of fd directories is the costliest read of a scan, and
// several probes want its answer. A failed or cancelled walk is not kept, so a later caller
// with time left tries again.
func (t *Table) Sockets(ctx context.Context) (*Sockets, error) {
	t.sockMu.Lock()
	defer t.sockMu.Unlock()
	if t.sockets != nil {
		return t.sockets, nil
	}
	ls, err := t.fs.Listeners()
	if err != nil {
		return nil, fmt.Errorf("cannot read the TCP socket tables: %w", err)
	}
	wanted := make(map[uint64]bool, len(ls))
	for _, l := range ls {
		wanted[l.Inode] = true
	}
	pids, err := t.pidList()
	if err != nil {
		pids, err = t.fs.PIDs() // a failure is not kept: list again
	}
	if err != nil {
		return nil, fmt.Errorf("cannot map sockets to processes: %w", err)
	}
	owners, unreadable, err := t.fs.socketOwners(ctx, pids, wanted)
	if err != nil {
		return nil, fmt.Errorf("cannot map sockets to processes: %w", err)
	}
	t.sockets = &Sockets{Listeners: ls, Owners: owners, Unreadable: unreadable}
	return t.sockets, nil
}
