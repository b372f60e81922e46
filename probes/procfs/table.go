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

	sockMu    sync.Mutex
	lsRead    bool
	listeners []Listener
	wanted    map[uint64]bool // the listeners' inodes
	fds       map[int]fdEntry // each process's fds, walked at most once per table
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

// Sockets is the TCP listeners of a procfs and which of the processes asked about hold each
// (by socket inode).
type Sockets struct {
	Listeners  []Listener
	Owners     map[uint64][]int // ascending pids, among those asked about
	Unreadable int              // processes asked about whose fds could not be listed
}

// Sockets reads the LISTEN rows (once per table) and which of the processes pids (ascending;
// nil: every process) hold each. The fd walk is the costliest read of a scan, over thousands
// of fd directories, so a caller that knows which processes can matter names them, and each
// process's fds are read at most once per table, for every caller. A failed or cancelled
// walk keeps what it read, so a later caller with time left reads only the rest.
func (t *Table) Sockets(ctx context.Context, pids []int) (*Sockets, error) {
	t.sockMu.Lock()
	defer t.sockMu.Unlock()
	if !t.lsRead {
		ls, err := t.fs.Listeners()
		if err != nil {
			return nil, fmt.Errorf("cannot read the TCP socket tables: %w", err)
		}
		t.lsRead, t.listeners = true, ls
		t.wanted = make(map[uint64]bool, len(ls))
		for _, l := range ls {
			t.wanted[l.Inode] = true
		}
		t.fds = map[int]fdEntry{}
	}
	if pids == nil {
		all, err := t.pidList()
		if err != nil {
			all, err = t.fs.PIDs() // a failure is not kept: list again
		}
		if err != nil {
			return nil, fmt.Errorf("cannot map sockets to processes: %w", err)
		}
		pids = all
	}
	s := &Sockets{Listeners: t.listeners, Owners: map[uint64][]int{}}
	for _, pid := range pids {
		e, ok := t.fds[pid]
		if !ok {
			// A host with very many processes and descriptors takes a while: stop at the deadline.
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("cannot map sockets to processes: reading process sockets: %w", err)
			}
			e = t.fs.fdSockets(pid, t.wanted)
			t.fds[pid] = e
		}
		if e.unreadable {
			s.Unreadable++
		}
		for _, ino := range e.inodes {
			s.Owners[ino] = append(s.Owners[ino], pid)
		}
	}
	return s, nil
}
