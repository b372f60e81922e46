package systemd

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DynamicUserVersion is the first systemd that runs the units as shipped: DynamicUser= with
// User=ec2sec and StateDirectory= (235). Before it (Amazon Linux 2 has 219) the installers add
// DropInName to each unit (docs/install.md, "Amazon Linux 2 (systemd 219)").
const DynamicUserVersion = 235

// DropInName is the drop-in, in /etc/systemd/system/<unit>.d/, for systemd before 235.
const DropInName = "50-systemd-before-235.conf"

// StateDir is the state directory the drop-in makes writable (root's, 0700, made by the
// installer, since StateDirectory= is unknown there).
const StateDir = "/var/lib/ec2sec"

// deniedBefore231 is the units' system call denials by name: systemd before 231 knows no
// @groups. It is the unit's denied groups as systemd 252 expands them and its explicit
// denials, but capset (it can only narrow, and the agent drops its capabilities with it).
// packaging's TestSystemdBefore235 keeps it equal to the unit's filter, and the shell copies in
// packaging/nfpm/postinstall.sh and packaging/ssm/install.sh equal to this.
const deniedBefore231 = "_sysctl acct adjtimex afs_syscall bdflush break chown chown32 chroot clock_adjtime clock_adjtime64 clock_settime clock_settime64 create_module delete_module fanotify_init fanotify_mark fchown fchown32 fchownat finit_module fsconfig fsmount fsopen fspick ftime get_kernel_syms getpmsg gtty idle init_module ioperm iopl ioprio_set kexec_file_load kexec_load lchown lchown32 lock lookup_dcookie mbind migrate_pages modify_ldt mount mount_setattr move_mount move_pages mpx nfsservctl nice open_by_handle_at open_tree pciconfig_iobase pciconfig_read pciconfig_write perf_event_open pidfd_getfd pivot_root process_vm_readv process_vm_writev prof profil ptrace putpmsg query_module quotactl quotactl_fd reboot rtas s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr sched_setaffinity sched_setattr sched_setparam sched_setscheduler security set_mempolicy set_mempolicy_home_node setdomainname setfsuid setfsuid32 setgroups setgroups32 sethostname setpriority setresuid setresuid32 setreuid setreuid32 setrlimit settimeofday setuid setuid32 sgetmask ssetmask stime stty subpage_prot swapoff swapon switch_endian sys_debug_setcontext sysfs tuxcall ulimit umount umount2 uselib ustat vhangup vm86 vm86old vserver"

// WatcherCapsBefore235 bounds the watcher's root below systemd 235. A systemd that old (and
// its libcap) predates CAP_BPF and CAP_PERFMON (Linux 5.8) and skips names it cannot parse;
// CAP_SYS_ADMIN stands for both on every kernel (Amazon Linux 2's 5.10 included) and lets the
// watcher mount the cgroup2 hierarchy privately on a cgroup v1 host, which Amazon Linux 2 is.
// The watcher gives it up, with everything but CAP_SYS_PTRACE, once its programs are attached.
const WatcherCapsBefore235 = "CAP_SYS_ADMIN CAP_NET_ADMIN CAP_SYS_PTRACE"

// watcherAllowedBefore235 are the denials the watcher's drop-in takes back: its private
// cgroup2 mount (mount, and umount2 to detach it).
var watcherAllowedBefore235 = map[string]bool{"mount": true, "umount2": true}

func watcherDenied() string {
	var out []string
	for _, c := range strings.Fields(deniedBefore231) {
		if !watcherAllowedBefore235[c] {
			out = append(out, c)
		}
	}
	return strings.Join(out, " ")
}

var versionRe = regexp.MustCompile(`^systemd ([0-9]+)\b`)

// ParseVersion reads the version from `systemctl --version` output ("systemd 219\n..."); 0
// when it is not there.
func ParseVersion(out string) int {
	m := versionRe.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	v, err := strconv.Atoi(m[1])
	if err != nil {
		return 0
	}
	return v
}

// DropIn returns the drop-in for unit (ec2sec.service or IMDSWatchName) on a systemd of the
// given version, before 235: root bounded to the unit's own capabilities, the state dir
// writable under ProtectSystem=full, the unit's limits and system call filter under the names
// systemd 219 knows. The install scripts write exactly this text.
func DropIn(unit string, version int) string {
	caps, mem, calls := "CAP_DAC_READ_SEARCH CAP_SYS_PTRACE", "128M", "bpf "+deniedBefore231
	if unit == IMDSWatchName {
		caps, mem, calls = WatcherCapsBefore235, "64M", watcherDenied()
	}
	return fmt.Sprintf(`# Written by the ec2sec installer: this host's systemd (%d) is older than 235, which the unit
# needs for DynamicUser=, User=ec2sec, StateDirectory= and AmbientCapabilities=. Here the
# service runs as root, bounded to the unit's capabilities, with the state directory
# /var/lib/ec2sec (root, 0700) made by the installer. The installer removes this file when
# systemd is 235 or newer, and on uninstall. See docs/install.md, "Amazon Linux 2 (systemd 219)".
[Service]
User=root
DynamicUser=no
# Root holds these without AmbientCapabilities= (229); the bounding set keeps it to them.
CapabilityBoundingSet=%s
# ProtectSystem=strict (232) and StateDirectory= (235) are unknown: /usr, /boot and /etc
# read-only, the state directory writable.
ProtectSystem=full
ReadWriteDirectories=/var/lib/ec2sec
# The unit's limits under the names systemd 219 knows (MemoryMax= is 231, StartLimit*Sec= 230).
MemoryLimit=%s
StartLimitInterval=600
StartLimitBurst=5
# The unit's @groups (231) are unknown: reset its filter, deny by name.
SystemCallFilter=
SystemCallFilter=~%s
SystemCallErrorNumber=EPERM
`, version, caps, mem, calls)
}
