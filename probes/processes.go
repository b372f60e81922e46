package probes

import "github.com/ec2sec/ec2sec/probes/procfs"

// processes lists the processes of env.Proc with their comm names: the scan's shared table,
// or one read now when the Env was built without it (tests, callers of a single probe).
func (env *Env) processes() ([]procfs.Proc, error) {
	if env.Procs != nil {
		return env.Procs.Procs()
	}
	return procfs.NewTable(env.Proc).Procs()
}
