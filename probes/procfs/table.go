package procfs

import "sync"

// Proc is one process of a Table.
type Proc struct {
	PID  int
	Comm string // "" when it could not be read (exited, or no permission)
}

// Table is one scan's process list: pids and command names read once and shared by every
// probe that looks for a process by name, instead of each reading thousands of comm files.
// It is safe for concurrent use; callers must not modify what Procs returns.
type Table struct {
	fs    FS
	once  sync.Once
	procs []Proc
	err   error
}

// NewTable returns the table of the procfs directory dir; nothing is read until Procs.
func NewTable(dir string) *Table { return &Table{fs: FS{Dir: dir}} }

// Procs lists the processes, ascending by pid, reading them on the first call.
func (t *Table) Procs() ([]Proc, error) {
	t.once.Do(func() {
		pids, err := t.fs.PIDs()
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
