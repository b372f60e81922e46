package probes

// The sshd probe's ssh-listening-public check: SSH listeners found through procfs (sshd, or
// systemd for an enabled ssh.socket), attributed to their processes.

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/ec2sec/ec2sec/probes/procfs"
	"github.com/ec2sec/ec2sec/probes/sshdconfig"
)

// findSSHListeners returns the TCP listeners that belong to SSH: held by an sshd process, or
// by systemd on a port of an enabled ssh.socket, or (when some processes' sockets cannot be
// read) unattributed on a port sshd_config names. unreadable counts those processes.
//
// Walking every process's fds is the costliest read of a scan, so the processes that can make
// a listener SSH's (named sshd; systemd and pid 1 when an ssh.socket is enabled) are walked
// first. Their answer stands when it finds SSH on a non-loopback address and leaves no
// listener on sshd's configured ports unexplained; otherwise (a PASS to be, an owner to be
// found, an sshd whose name was changed) every process is walked, as the answer must then
// speak for all of them. What the first answer leaves out is other processes that share an
// SSH listener, which would only be named in its evidence.
func findSSHListeners(ctx context.Context, env *Env, cfg *sshdconfig.Config) (found []sshListener, unreadable int, err error) {
	table := env.procTable()
	socketPorts := sshSocketPorts(env)
	configPorts := sshdConfigPorts(cfg)
	procs, perr := table.Procs()
	if perr == nil {
		cands := []int{} // not nil, which would mean every process
		for _, pr := range procs {
			if pr.Comm == "sshd" || len(socketPorts) > 0 && (pr.Comm == "systemd" || pr.PID == 1) {
				cands = append(cands, pr.PID)
			}
		}
		socks, err := table.Sockets(ctx, cands)
		if err != nil {
			return nil, 0, err
		}
		found = attributeSSH(table, procs, socks, socketPorts, configPorts, false)
		if sshSettled(socks.Listeners, found, configPorts) {
			return found, socks.Unreadable, nil
		}
	}
	socks, err := table.Sockets(ctx, nil)
	if err != nil {
		return nil, 0, err
	}
	return attributeSSH(table, procs, socks, socketPorts, configPorts, true), socks.Unreadable, nil
}

// attributeSSH picks the listeners of socks that are SSH's (see findSSHListeners). everyone
// says socks covers every process: only then does a listener without owner have a hidden one.
func attributeSSH(table *procfs.Table, procs []procfs.Proc, socks *procfs.Sockets, socketPorts, configPorts []int, everyone bool) []sshListener {
	p := table.FS()
	var found []sshListener
	for _, l := range socks.Listeners {
		s := sshListener{l: l, pids: socks.Owners[l.Inode]}
		isSSH := false
		for _, pid := range s.pids {
			comm, ok := "", false
			if i, hit := slices.BinarySearchFunc(procs, pid, func(pr procfs.Proc, pid int) int { return pr.PID - pid }); hit {
				comm, ok = procs[i].Comm, procs[i].Comm != ""
			}
			if !ok {
				comm, _ = p.Comm(pid)
			}
			exe := strings.TrimSuffix(p.Exe(pid), " (deleted)")
			desc := fmt.Sprintf("%d %s", pid, comm)
			if exe != "" {
				desc += " (" + exe + ")"
			}
			s.procs = append(s.procs, desc)
			switch {
			case comm == "sshd" || path.Base(exe) == "sshd":
				isSSH, s.activation = true, "sshd"
			case (comm == "systemd" || pid == 1) && slices.Contains(socketPorts, int(l.Addr.Port())) && s.activation == "":
				isSSH, s.activation = true, "systemd socket (ssh.socket)"
			}
		}
		if everyone && len(s.pids) == 0 && socks.Unreadable > 0 && slices.Contains(configPorts, int(l.Addr.Port())) {
			// Without privilege the owner is hidden; sshd's own port is evidence enough.
			isSSH, s.activation = true, "unknown owner on sshd's configured port"
		}
		if isSSH {
			found = append(found, s)
		}
	}
	return found
}

// sshSettled says whether the listeners found among the likely owners' sockets are the whole
// answer: SSH found on a non-loopback address, and every listener on a port sshd_config
// names is SSH's (any other might be an sshd's that only the walk of every process shows,
// or an unattributed one that the count of unreadable processes decides).
func sshSettled(ls []procfs.Listener, found []sshListener, configPorts []int) bool {
	public := false
	for _, s := range found {
		public = public || !s.l.Loopback()
	}
	if !public {
		return false
	}
	for _, l := range ls {
		if slices.Contains(configPorts, int(l.Addr.Port())) &&
			!slices.ContainsFunc(found, func(s sshListener) bool { return s.l.Inode == l.Inode }) {
			return false
		}
	}
	return true
}

// sshListener is a listening socket attributed to SSH.
type sshListener struct {
	l          procfs.Listener
	pids       []int
	procs      []string // "1234 sshd (/usr/sbin/sshd)"
	activation string   // "sshd", "systemd socket", "unknown owner"
}

// sshdListeners finds SSH listeners through procfs and reports each non-loopback one.
func sshdListeners(ctx context.Context, env *Env, cfg *sshdconfig.Config, common map[string]any) []Result {
	const check = "ssh-listening-public"
	if env.Proc == "" {
		return []Result{NewResult(check, NotAvailable, "", "sockets are not visible without a procfs (--proc): an offline image has no listeners")}
	}
	if ctx.Err() != nil {
		return []Result{NewResult(check, NotAvailable, "", "scan deadline reached before sockets were read")}
	}
	found, unreadable, err := findSSHListeners(ctx, env, cfg)
	if err != nil {
		return []Result{NewResult(check, NotAvailable, "", err.Error())}
	}
	var out []Result
	var loopback []string
	for _, s := range found {
		if s.l.Loopback() {
			loopback = append(loopback, s.l.String())
			continue
		}
		who := s.activation
		if len(s.procs) > 0 {
			who += ": " + strings.Join(s.procs, ", ")
		}
		r := withAll(NewResult(check, Failed, s.l.String(), fmt.Sprintf("SSH listens on %s port %d (%s)", s.l.Addr.Addr(), s.l.Addr.Port(), who)), common).
			With("address", s.l.Addr.Addr().String()).With("port", int(s.l.Addr.Port())).
			With("protocol", s.l.Proto).With("owner", s.activation)
		if len(s.procs) > 0 {
			r = r.With("processes", s.procs).With("pids", s.pids)
		}
		out = append(out, r)
	}
	if len(out) > 0 {
		return out
	}
	r := withAll(NewResult(check, Passed, "", "no SSH listener on a non-loopback address"), common).
		With("loopback_listeners", nonNil(loopback))
	if len(loopback) > 0 {
		r.Reason = "SSH listens on loopback only: " + strings.Join(loopback, ", ")
	}
	if unreadable > 0 {
		r = r.With("unreadable_processes", unreadable)
		r.Reason += fmt.Sprintf(" (the sockets of %d processes could not be attributed: run as root to see them all)", unreadable)
	}
	return []Result{r}
}

// sshdConfigPorts returns the ports sshd_config names (Port, and ports in ListenAddress),
// 22 when it names none.
func sshdConfigPorts(cfg *sshdconfig.Config) []int {
	var ports []int
	if cfg != nil {
		for _, d := range cfg.All("port") {
			if d.Global() {
				if n, err := strconv.Atoi(d.Value()); err == nil {
					ports = append(ports, n)
				}
			}
		}
		for _, d := range cfg.All("listenaddress") {
			if n := portOf(d.Value()); n > 0 && d.Global() {
				ports = append(ports, n)
			}
		}
	}
	if len(ports) == 0 {
		ports = []int{22}
	}
	return ports
}

// systemdUnitDirs are where systemd looks for units and drop-ins, highest precedence first.
var systemdUnitDirs = []string{
	"/etc/systemd/system", "/run/systemd/system", "/run/systemd/generator",
	"/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system",
}

// sshSocketPorts returns the TCP ports of an enabled ssh.socket (Debian, Ubuntu) or
// sshd.socket (Fedora family), with drop-ins (Ubuntu's generator writes one from sshd_config's
// Port). systemd owns those listeners until a connection arrives.
func sshSocketPorts(env *Env) []int {
	var ports []int
	for _, unit := range []string{"ssh.socket", "sshd.socket"} {
		if !unitEnabled(env, unit) {
			continue
		}
		var lines []string
		for _, dir := range systemdUnitDirs {
			if b, _, err := env.FS.ReadFile(path.Join(dir, unit), 64<<10); err == nil {
				lines = append(lines, unitValues(b, "ListenStream")...)
				break
			}
		}
		for _, dir := range systemdUnitDirs {
			drops, _ := env.FS.Glob(path.Join(dir, unit+".d", "*.conf"), 64)
			for _, d := range drops {
				if b, _, err := env.FS.ReadFile(d, 64<<10); err == nil {
					lines = append(lines, unitValues(b, "ListenStream")...)
				}
			}
		}
		for _, v := range lines {
			if v == "" { // an empty assignment resets the list
				ports = ports[:0]
				continue
			}
			if n := portOf(v); n > 0 {
				ports = append(ports, n)
			}
		}
	}
	return ports
}

// unitEnabled reports whether some target wants the unit: a link in a .wants directory.
func unitEnabled(env *Env, unit string) bool {
	for _, dir := range systemdUnitDirs {
		if m, _ := env.FS.Glob(path.Join(dir, "*.wants", unit), 1); len(m) > 0 {
			return true
		}
	}
	return false
}

// unitValues returns the values of key in a systemd unit file, in order.
func unitValues(b []byte, key string) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.TrimSpace(k) == key {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// portOf returns the port of "22", "0.0.0.0:22", "[::]:22" or "host:22", or 0 (a unix socket
// path, or an address without port).
func portOf(s string) int {
	if i := strings.LastIndex(s, ":"); i >= 0 && !strings.HasPrefix(s, "/") {
		s = s[i+1:]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0 // a path, or not a TCP port at all
	}
	return n
}
