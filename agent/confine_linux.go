//go:build linux

package agent

import (
	"fmt"
	"log/slog"
	"runtime"
	"unsafe"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// A worker parses what hostile users and endpoints hand it (files, IMDS and AWS answers) while
// it holds the unit's two capabilities, so it confines itself first, for good (no way back in
// Linux), on every thread:
//   - Landlock: read anywhere, write only under the state dir (no /proc/<pid>/mem for writing,
//     no file planted elsewhere), execute nothing; where the kernel has no Landlock, a log line
//     says so and the unit's ProtectSystem=strict is what remains;
//   - seccomp: ptrace, process_vm_readv, process_vm_writev and pidfd_getfd fail with EPERM
//     (the unit denies them too; this holds wherever the worker runs, systemd or not);
//   - no new privileges, and capabilities dropped once they are not needed (dropCapabilities).

// confinement says what confineWorker achieved.
type confinement struct {
	LandlockABI int    // the ABI enforced; 0 = none
	Writable    string // the one writable tree ("" = none)
	Seccomp     bool
}

// confineWorker confines this process; what it could not do is logged, never fatal: a worker
// on an old kernel still scans.
func confineWorker(stateDir string, log *slog.Logger) confinement {
	var c confinement
	if err := llsys.AllThreadsPrctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		log.Warn("worker: no_new_privs not set", "err", err)
	}
	if stateDir != "" && privateDir(stateDir) == nil {
		c.Writable = stateDir
	}
	abi, err := landlockABI()
	switch {
	case err != nil || abi < 1:
		log.Warn("Landlock is not available on this kernel: the worker is not confined to its state dir (systemd's ProtectSystem=strict still keeps the file system read-only)", "err", errString(err))
	default:
		rules := []landlock.Rule{landlock.PathAccess(llsys.AccessFSReadFile|llsys.AccessFSReadDir, "/")}
		if c.Writable != "" {
			rules = append(rules, landlock.PathAccess(stateDirAccess, c.Writable))
		}
		if err := landlock.V5.BestEffort().RestrictPaths(rules...); err != nil {
			log.Warn("Landlock restriction failed: the worker is not confined to its state dir", "err", err)
		} else {
			c.LandlockABI = min(abi, 5)
		}
	}
	if err := denyTracing(); err != nil {
		log.Warn("worker: seccomp filter not installed", "err", err)
	} else {
		c.Seccomp = true
	}
	log.Info("worker confined", "landlock_abi", c.LandlockABI, "writable", c.Writable, "seccomp", c.Seccomp)
	return c
}

// stateDirAccess is what a worker may do under its state dir: what go-landlock's RWDirs grants
// but execute, which RWDirs includes (a worker could run a program it wrote there).
const stateDirAccess = llsys.AccessFSReadFile | llsys.AccessFSReadDir | llsys.AccessFSWriteFile |
	llsys.AccessFSTruncate | llsys.AccessFSRemoveDir | llsys.AccessFSRemoveFile | llsys.AccessFSMakeChar |
	llsys.AccessFSMakeDir | llsys.AccessFSMakeReg | llsys.AccessFSMakeSock | llsys.AccessFSMakeFifo |
	llsys.AccessFSMakeBlock | llsys.AccessFSMakeSym

// landlockABI is the kernel's Landlock ABI version (a variable: a test plays a kernel
// without Landlock).
var landlockABI = llsys.LandlockGetABIVersion

// auditArch is the seccomp_data.arch of this build's native ABI (0 = no filter for it).
var auditArch = map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}[runtime.GOARCH]

// deniedSyscalls are what would let a worker holding CAP_SYS_PTRACE touch another process.
var deniedSyscalls = []uint32{unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PIDFD_GETFD}

// denyTracing installs a seccomp filter, on all threads (TSYNC), that fails deniedSyscalls
// and every system call of a foreign ABI with EPERM and allows the rest.
func denyTracing() error {
	if auditArch == 0 {
		return fmt.Errorf("no seccomp filter for %s", runtime.GOARCH)
	}
	const (
		ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
	)
	n := len(deniedSyscalls)
	// Layout: arch check, nr load, x32 check, one jump per denied call, allow, deny.
	prog := []unix.SockFilter{
		{Code: ldAbs, K: 4}, // seccomp_data.arch
		{Code: jeq, K: auditArch, Jt: 1, Jf: 0},
		{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: ldAbs, K: 0},                                 // seccomp_data.nr
		{Code: jge, K: 0x40000000, Jt: uint8(n + 1), Jf: 0}, // x32 on amd64; no such numbers elsewhere
	}
	for i, nr := range deniedSyscalls {
		prog = append(prog, unix.SockFilter{Code: jeq, K: nr, Jt: uint8(n - i), Jf: 0})
	}
	prog = append(prog,
		unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
	)
	fprog := &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(fprog)))
	runtime.KeepAlive(prog)
	switch {
	case errno != 0:
		return fmt.Errorf("seccomp: %w", errno)
	case r != 0:
		return fmt.Errorf("seccomp: thread %d could not be synchronised", r)
	}
	return nil
}

// dropCapabilities empties this process's capability sets (effective, permitted, inheritable,
// and so ambient) on every thread: what runs after it (delivery, which talks to the AWS
// endpoints) cannot read other users' files or processes, and with no_new_privs nothing can
// give them back.
func dropCapabilities() error {
	return capset(func(d *[2]unix.CapUserData) { *d = [2]unix.CapUserData{} })
}

// dropEffectivePtrace clears CAP_SYS_PTRACE from the effective set only: the daemon keeps it
// permitted (and ambient) to hand it to the scan worker it starts, but never uses it. (It
// keeps CAP_DAC_READ_SEARCH effective: a config file may be root's and 0600.)
func dropEffectivePtrace() error {
	return capset(func(d *[2]unix.CapUserData) { d[0].Effective &^= 1 << unix.CAP_SYS_PTRACE })
}

// keepOnlyPtrace leaves this process CAP_SYS_PTRACE alone, effective and permitted, on every
// thread (inheritable, and so ambient, emptied). The resident IMDS watcher needs its loading
// capabilities (CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, or CAP_SYS_ADMIN under systemd 219) only
// until its programs are attached, and CAP_SYS_PTRACE after, to name other users' callers.
func keepOnlyPtrace() error {
	return capset(func(d *[2]unix.CapUserData) {
		keep := d[0].Permitted & (1 << unix.CAP_SYS_PTRACE)
		*d = [2]unix.CapUserData{}
		d[0].Effective, d[0].Permitted = keep, keep
	})
}

func capset(change func(*[2]unix.CapUserData)) error {
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := new([2]unix.CapUserData)
	if err := unix.Capget(hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	change(data)
	hdr.Pid = 0 // each thread sets its own
	_, _, errno := psx.Syscall3(unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(hdr)
	runtime.KeepAlive(data)
	if errno != 0 {
		return fmt.Errorf("capset: %w", errno)
	}
	return nil
}
