package probes

import "github.com/ec2sec/ec2sec/probes/procfs"

// procTable is the scan's shared process table, or one made now when the Env was built
// without it (tests, callers of a single probe).
func (env *Env) procTable() *procfs.Table {
	if env.Procs != nil {
		return env.Procs
	}
	return procfs.NewTable(env.Proc)
}

// processes lists the processes of env.Proc with their comm names.
func (env *Env) processes() ([]procfs.Proc, error) { return env.procTable().Procs() }
