package probes

// The credentials probe's process environments: AWS secret keys in <proc>/*/environ.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ec2sec/ec2sec/probes/procfs"
)

// procEnvs looks for AWS secret keys in <proc>/*/environ, a process at a time.
type procEnvs struct {
	env   *Env
	p     procfs.FS
	all   []int
	self  int            // our own pid, when the procfs is the live one
	names map[int]string // user names by uid
}

const envCheck = "cred-process-env"

// newProcEnvs prepares the reading of process environments; without a procfs, or without
// the list of processes, it returns nil and the check's result.
func newProcEnvs(env *Env, users []passwdUser) (*procEnvs, []Result) {
	if env.Proc == "" {
		return nil, []Result{NewResult(envCheck, NotAvailable, "", "no procfs to read process environments from (an offline image, or --proc not given)")}
	}
	table := env.procTable()
	pids, err := table.PIDs()
	if err != nil {
		return nil, []Result{NewResult(envCheck, NotAvailable, "", fmt.Sprintf("could not list processes: %v", err))}
	}
	pe := &procEnvs{env: env, p: table.FS(), all: pids, self: -1, names: map[int]string{}}
	// Our own environment is the caller's business (and holds what the SDK was given); skip
	// it only when this procfs is the live one, where the pid is really us.
	if t, err := os.Readlink(filepath.Join(pe.p.Dir, "self")); err == nil && t == strconv.Itoa(os.Getpid()) {
		pe.self = os.Getpid()
	}
	for _, u := range users {
		if _, ok := pe.names[u.uid]; !ok {
			pe.names[u.uid] = u.name
		}
	}
	return pe, nil
}

// procScan is what reading one process's environment found.
type procScan struct {
	read    bool  // its environment was read
	denied  bool  // permission denied
	stopped error // not looked at: the probe's time was up
	results []Result
}

// scan reads the environment of pid into r's buffer and records its AWS secret keys in out.
func (pe *procEnvs) scan(r *credReader, pid int, out *procScan) {
	if pid == pe.self {
		return
	}
	p := pe.p
	data, _, err := p.Environ(pid, maxEnvironSize, r.envBuf)
	if err != nil {
		out.denied = errors.Is(err, fs.ErrPermission)
		return // exited meanwhile, or a kernel thread
	}
	out.read = true
	r.envBuf = data // one buffer for all environments: nothing below keeps data
	if !bytes.Contains(data, []byte("SECRET_ACCESS_KEY")) && !bytes.Contains(data, []byte("secret_access_key")) {
		return
	}
	text := string(bytes.ReplaceAll(data, []byte{0}, []byte{'\n'}))
	findings := pe.env.Secrets.ScanAWS(text, "environ", pe.env.FingerprintKey)
	for _, f := range findings {
		if f.Rule != "aws-access-key-pair" && f.Rule != "aws-secret-access-key" {
			continue // a key id alone is not a secret
		}
		resource := fmt.Sprintf("/proc/%d/environ", pid)
		exe := p.Exe(pid)
		comm, _ := p.Comm(pid)
		user := ""
		uid := -1
		if s, err := p.ReadStatus(pid); err == nil {
			uid = s.UID
			user = pe.names[uid]
		}
		reason := fmt.Sprintf("process %d (%s, user %s) holds %s in its environment", pid, cmpOr(exe, comm), cmpOr(user, strconv.Itoa(uid)), kindWords(f))
		r := secretResult(envCheck, f, sourceProcess, resource, resource, reason)
		r.Evidence["pid"] = pid
		r.Evidence["exe"] = exe
		r.Evidence["comm"] = comm
		r.Evidence["user"] = user
		r.Evidence["uid"] = uid
		out.results = append(out.results, r)
	}
}

// results adds up what reading the environments of pids found, in pid order.
func (pe *procEnvs) results(pids []int, scans []procScan) []Result {
	var out []Result
	var denied []int
	read := 0
	var stopped error
	for i, sc := range scans {
		if sc.stopped != nil {
			stopped = sc.stopped
			continue
		}
		if sc.denied {
			denied = append(denied, pids[i])
		}
		if sc.read {
			read++
		}
		out = append(out, sc.results...)
	}
	if stopped != nil {
		return append(out, NewResult(envCheck, NotAvailable, "", fmt.Sprintf("stopped after %d of %d processes: %v", read, len(pids), stopped)))
	}
	// Without CAP_SYS_PTRACE a refusal means we lack the privilege to look: say so. With it,
	// a few processes may still be out of reach (an LSM, another user namespace, as for pid 1
	// in some sandboxes): report what was seen and name what was not.
	if len(denied) > 0 && (!haveCapSysPtrace() || len(denied) > read) {
		return append(out, NewResult(envCheck, NotAvailable, "", fmt.Sprintf("could not read the environment of %d of %d processes (permission denied): run as root, or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH", len(denied), len(denied)+read)))
	}
	var unseen string
	if len(denied) > 0 {
		unseen = fmt.Sprintf("; %d could not be read even with CAP_SYS_PTRACE (pids %s)", len(denied), pidList(denied, 10))
	}
	if len(out) == 0 {
		r := NewResult(envCheck, Passed, "", fmt.Sprintf("no AWS secret key in the environment of %s%s", plural(read, "process", "processes"), unseen))
		if len(denied) > 0 {
			r = r.With("unreadable_pids", denied[:min(len(denied), 100)])
		}
		return []Result{r}
	}
	return out
}

// pidList names at most n pids, then how many more.
func pidList(pids []int, n int) string {
	var b strings.Builder
	for i, p := range pids {
		if i == n {
			fmt.Fprintf(&b, " and %d more", len(pids)-n)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
}

// haveCapSysPtrace reports whether this process has CAP_SYS_PTRACE (bit 19) in its effective
// set, read from the live /proc/self/status (our own privileges, whatever --proc says).
func haveCapSysPtrace() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<19) != 0
		}
	}
	return false
}
