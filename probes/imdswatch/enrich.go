package imdswatch

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Proc is one process of a caller's parent chain.
type Proc struct {
	Pid  uint32 `json:"pid"`
	Comm string `json:"comm,omitempty"`
	Exe  string `json:"exe,omitempty"`
}

// Identity is who made a request: what the kernel said, completed from procfs while the
// process still runs (it waits for IMDS's answer, so it nearly always does).
type Identity struct {
	Pid     uint32 `json:"pid"`
	Comm    string `json:"comm"`
	Exe     string `json:"exe,omitempty"`
	Cmdline string `json:"cmdline,omitempty"` // args joined by spaces, secret-looking args redacted
	UID     uint32 `json:"uid"`
	User    string `json:"user,omitempty"`
	// Parents are up to three ancestors, nearest first.
	Parents []Proc `json:"parents,omitempty"`
	// Cgroup is the cgroup v2 path; Container and Runtime name the container when the path
	// is one a runtime makes (docker, containerd, cri-o, podman, ECS); Unit is the systemd
	// unit otherwise.
	Cgroup    string `json:"cgroup,omitempty"`
	Container string `json:"container,omitempty"`
	Runtime   string `json:"runtime,omitempty"`
	Unit      string `json:"unit,omitempty"`
	// Netns is "host" (the agent's network namespace), "other" (a container's) or
	// "unknown" (the process was gone before it could be looked at).
	Netns string `json:"netns"`
	// Gone: the process had exited; only the kernel's fields are known (comm, user, network
	// namespace, and the cgroup while it exists).
	Gone bool `json:"gone,omitempty"`
}

// Enricher completes events from a procfs directory. It caches user names and what it
// learnt about network namespaces (by the kernel's netns cookie), both bounded.
type Enricher struct {
	Proc string // default /proc
	// Cgroupfs is the cgroup v2 mount (Watcher.Cgroup) the kernel's cgroup id of a caller
	// that is gone is looked up in; none when empty.
	Cgroupfs string
	mu       sync.Mutex
	cgroups  cgroupIndex
	self     string // the agent's own netns link, e.g. "net:[4026531840]"
	// selfCookie is the kernel's cookie of the agent's own netns (SO_NETNS_COOKIE, Linux
	// 5.14+), 0 where unknown: then namespaces are told apart only through procfs.
	selfCookie uint64
	ns         map[uint64]string // netns cookie -> "host" | "other"
	usr        map[uint32]string
}

const maxCache = 1024

// Enrich turns an event into the caller's identity.
func (en *Enricher) Enrich(e Event) Identity {
	proc := en.Proc
	if proc == "" {
		proc = "/proc"
	}
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.ns == nil {
		en.ns, en.usr = map[uint64]string{}, map[uint32]string{}
		en.self, _ = os.Readlink(filepath.Join(proc, "self", "ns", "net"))
		if filepath.Clean(proc) == "/proc" {
			en.selfCookie = ownNetnsCookie()
		}
		en.cgroups.root = en.Cgroupfs
	}
	pid := e.SendTgid
	if pid == 0 {
		pid = e.Tgid
	}
	id := Identity{Pid: pid, Comm: e.Comm, UID: e.SendUID, Netns: "unknown"}
	if en.selfCookie != 0 && e.Netns != 0 {
		// The kernel's cookie says it whatever became of the process: a short-lived caller
		// (curl) is often a zombie by the time it is looked at, with no ns link left.
		id.Netns = "other"
		if e.Netns == en.selfCookie {
			id.Netns = "host"
		}
	}
	dir := filepath.Join(proc, strconv.FormatUint(uint64(pid), 10))
	// The executable and the arguments go with the memory, early in an exit, while status
	// stays until the zombie is reaped: what vanishes first is read first.
	exe, _ := os.Readlink(filepath.Join(dir, "exe"))
	cmdline := readCmdline(dir)
	st, ok := readStatus(dir)
	if !ok {
		id.Gone = true
	} else {
		if id.Comm == "" {
			id.Comm = st.name
		}
		id.Exe, id.Cmdline = exe, cmdline
		id.Parents = parents(proc, st.ppid, 3)
		if cg, err := readCgroup(dir); err == nil {
			id.Cgroup = cg
		}
		if l, err := os.Readlink(filepath.Join(dir, "ns", "net")); err == nil && en.self != "" && id.Netns == "unknown" {
			id.Netns = "other"
			if l == en.self {
				id.Netns = "host"
			}
			if len(en.ns) < maxCache {
				en.ns[e.Netns] = id.Netns
			}
		}
	}
	if id.Netns == "unknown" {
		if n, ok := en.ns[e.Netns]; ok {
			id.Netns = n
		}
	}
	if id.Cgroup == "" {
		// Gone, or a zombie whose cgroup file is empty: the kernel's id still names it.
		id.Cgroup, _ = en.cgroups.path(e.Cgroup, time.Now())
	}
	id.Container, id.Runtime, id.Unit = ParseCgroup(id.Cgroup)
	id.User = en.userName(id.UID)
	return id
}

func (en *Enricher) userName(uid uint32) string {
	if n, ok := en.usr[uid]; ok {
		return n
	}
	n := ""
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		n = u.Username
	}
	if len(en.usr) < maxCache {
		en.usr[uid] = n
	}
	return n
}

type status struct {
	name string
	ppid uint32
}

// readStatus reads Name and PPid from /proc/<pid>/status (bounded).
func readStatus(dir string) (status, bool) {
	b, err := readBounded(filepath.Join(dir, "status"), 4096)
	if err != nil {
		return status{}, false
	}
	var s status
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			s.name = v
		case "PPid":
			p, _ := strconv.ParseUint(v, 10, 32)
			s.ppid = uint32(p)
		}
	}
	return s, true
}

func parents(proc string, ppid uint32, n int) []Proc {
	var out []Proc
	for ppid > 0 && len(out) < n {
		dir := filepath.Join(proc, strconv.FormatUint(uint64(ppid), 10))
		st, ok := readStatus(dir)
		if !ok {
			break
		}
		exe, _ := os.Readlink(filepath.Join(dir, "exe"))
		out = append(out, Proc{Pid: ppid, Comm: st.name, Exe: exe})
		ppid = st.ppid
	}
	return out
}

// maxCmdline bounds what is kept of a command line.
const maxCmdline = 1024

func readCmdline(dir string) string {
	b, err := readBounded(filepath.Join(dir, "cmdline"), maxCmdline)
	if err != nil {
		return ""
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	return strings.Join(RedactArgs(args), " ")
}

// readCgroup returns the cgroup v2 path ("0::/path") of a process.
func readCgroup(dir string) (string, error) {
	b, err := readBounded(filepath.Join(dir, "cgroup"), 8192)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 line")
}

func readBounded(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	m, err := f.Read(b)
	if m == 0 && err != nil {
		return nil, err
	}
	return b[:m], nil
}

// Redacted replaces an argument that looks like a secret.
const Redacted = "[REDACTED]"

var (
	secretName  = regexp.MustCompile(`(?i)(secret|token|passw(or)?d|pwd|api[-_]?key|access[-_]?key|private[-_]?key|credential|auth)`)
	secretValue = regexp.MustCompile(`^[A-Za-z0-9+/_=.-]{20,}$`)
	digit       = regexp.MustCompile(`[0-9]`)
)

// RedactArgs is the resident watcher's cheap first pass over a command line: the value of
// an option or header named like a secret (--token=x, --password x, TOKEN=x, "X-Token: x")
// and any long token-like argument become Redacted. The scan runs the secret detector over what is left before a
// command line goes into a result.
func RedactArgs(args []string) []string {
	out := make([]string, len(args))
	redactNext := false
	for i, a := range args {
		switch {
		case redactNext:
			out[i] = Redacted
			redactNext = false
			continue
		case i == 0:
			out[i] = a
			continue
		}
		// NAME=value, --name=value, or a header on the command line (curl -H "X-Token: v"),
		// split at whichever separator comes first.
		if j := strings.IndexAny(a, "=:"); j > 0 && !strings.Contains(a[:j], "/") && secretName.MatchString(a[:j]) {
			sep := a[j : j+1]
			if sep == ":" {
				sep = ": "
			}
			out[i] = a[:j] + sep + Redacted
			continue
		}
		if strings.HasPrefix(a, "-") && secretName.MatchString(a) {
			out[i] = a
			redactNext = true
			continue
		}
		if len(a) >= 20 && secretValue.MatchString(a) && digit.MatchString(a) && !strings.HasPrefix(a, "/") && !strings.Contains(a, "://") {
			out[i] = Redacted
			continue
		}
		out[i] = a
	}
	return out
}

var (
	hex64    = `([0-9a-f]{64})`
	runtimes = []struct {
		name string
		re   *regexp.Regexp
	}{
		{"docker", regexp.MustCompile(`(?:^|/)docker[-/]` + hex64 + `(?:\.scope)?(?:/|$)`)},
		{"containerd", regexp.MustCompile(`(?:^|/)cri-containerd-` + hex64 + `\.scope`)},
		{"cri-o", regexp.MustCompile(`(?:^|/)crio-` + hex64 + `\.scope`)},
		{"podman", regexp.MustCompile(`(?:^|/)libpod-` + hex64 + `\.scope`)},
		// ECS on EC2: /ecs/<task id>/<container id>.
		{"ecs", regexp.MustCompile(`^/ecs/[0-9a-f-]{32,36}/` + `([0-9a-f]{64}|[0-9a-f]{32}-[0-9]+)(?:/|$)`)},
		// Kubernetes with cgroupfs: /kubepods/<qos>/pod<uid>/<container id>.
		{"containerd", regexp.MustCompile(`^/kubepods/(?:[a-z]+/)?pod[0-9a-f-]+/` + hex64 + `(?:/|$)`)},
	}
	unitRe = regexp.MustCompile(`([^/]+\.(?:service|scope))$`)
)

// ParseCgroup names the container (id and runtime) or the systemd unit of a cgroup v2 path.
func ParseCgroup(path string) (container, runtimeName, unit string) {
	for _, r := range runtimes {
		if m := r.re.FindStringSubmatch(path); m != nil {
			return m[1], r.name, ""
		}
	}
	if m := unitRe.FindStringSubmatch(path); m != nil {
		return "", "", m[1]
	}
	return "", "", ""
}
