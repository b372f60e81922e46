#!/bin/sh
# ec2sec deb postinst / rpm %post: enable the services and (re)start them where systemd runs:
# ec2sec.service, the agent, and ec2sec-imdswatch.service, the IMDS watcher in its own minimal
# unit (docs/imds-watch.md). In an image build or a container without systemd it only enables
# them, for the next boot. Where systemd is older than 235 (Amazon Linux 2) it adds a drop-in to
# each unit (systemd_before_235 below); where systemd is newer, it removes a stale one.
set -u
if ! command -v systemctl >/dev/null 2>&1; then
	echo "ec2sec: systemctl not found: not enabling the services"
	exit 0
fi

# --- systemd before 235 (Amazon Linux 2 has 219) -------------------------------------------
# The units need systemd 235 (DynamicUser= with User=ec2sec, StateDirectory=). An older
# systemd ignores what it does not know, so User=ec2sec names a user that does not exist and
# the @groups of SystemCallFilter= leave almost no system call: the agent cannot start. There
# each unit gets a drop-in that runs it as root bounded to the same capabilities, in a state
# dir made here (docs/install.md, "Amazon Linux 2 (systemd 219)"). This block is the same in
# packaging/nfpm/postinstall.sh and packaging/ssm/install.sh; both write systemd.DropIn's text
# (systemd/before235.go, which `ec2sec service install` writes; TestSystemdBefore235 compares).
dropin=50-systemd-before-235.conf

# systemd_version prints the version `systemctl --version` starts with ("systemd 219"), or
# nothing when it cannot tell.
systemd_version() {
	systemctl --version 2>/dev/null | sed -n '1s/^systemd \([0-9][0-9]*\).*$/\1/p'
}

# The unit's system call filter by name, as systemd 219 reads it (its @groups came in 231): the
# unit's denied groups (@privileged @resources @mount @swap @reboot @raw-io @module @obsolete
# @cpu-emulation @debug @clock, as systemd 252 expands them) and its explicit denials. capset
# stays allowed: it can only narrow what the process holds, and the agent uses it to drop
# its capabilities. Names this libseccomp does not know are logged and skipped by systemd.
denied_calls='_sysctl acct adjtimex afs_syscall bdflush break chown chown32 chroot clock_adjtime clock_adjtime64 clock_settime clock_settime64 create_module delete_module fanotify_init fanotify_mark fchown fchown32 fchownat finit_module fsconfig fsmount fsopen fspick ftime get_kernel_syms getpmsg gtty idle init_module ioperm iopl ioprio_set kexec_file_load kexec_load lchown lchown32 lock lookup_dcookie mbind migrate_pages modify_ldt mount mount_setattr move_mount move_pages mpx nfsservctl nice open_by_handle_at open_tree pciconfig_iobase pciconfig_read pciconfig_write perf_event_open pidfd_getfd pivot_root process_vm_readv process_vm_writev prof profil ptrace putpmsg query_module quotactl quotactl_fd reboot rtas s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr sched_setaffinity sched_setattr sched_setparam sched_setscheduler security set_mempolicy set_mempolicy_home_node setdomainname setfsuid setfsuid32 setgroups setgroups32 sethostname setpriority setresuid setresuid32 setreuid setreuid32 setrlimit settimeofday setuid setuid32 sgetmask ssetmask stime stty subpage_prot swapoff swapon switch_endian sys_debug_setcontext sysfs tuxcall ulimit umount umount2 uselib ustat vhangup vm86 vm86old vserver'

# dropin_text UNIT VERSION prints the drop-in for UNIT (the capabilities and memory bound are
# the unit's own; the watcher keeps bpf(2), the one privileged call it makes). The watcher's
# CAP_SYS_ADMIN stands for CAP_BPF and CAP_PERFMON, which a systemd this old cannot name, and
# mounts cgroup2 privately on a cgroup v1 host (mount and umount2 allowed); once attached it
# keeps CAP_SYS_PTRACE alone (systemd.WatcherCapsBefore235).
dropin_text() {
	case $1 in
	ec2sec.service) caps='CAP_DAC_READ_SEARCH CAP_SYS_PTRACE' mem=128M calls="bpf $denied_calls" ;;
	*) caps='CAP_SYS_ADMIN CAP_NET_ADMIN CAP_SYS_PTRACE' mem=64M
		calls=$(echo "$denied_calls" | sed 's/ mount / /; s/ umount2 / /') ;;
	esac
	cat <<DROPIN
# Written by the ec2sec installer: this host's systemd ($2) is older than 235, which the unit
# needs for DynamicUser=, User=ec2sec, StateDirectory= and AmbientCapabilities=. Here the
# service runs as root, bounded to the unit's capabilities, with the state directory
# /var/lib/ec2sec (root, 0700) made by the installer. The installer removes this file when
# systemd is 235 or newer, and on uninstall. See docs/install.md, "Amazon Linux 2 (systemd 219)".
[Service]
User=root
DynamicUser=no
# Root holds these without AmbientCapabilities= (229); the bounding set keeps it to them.
CapabilityBoundingSet=$caps
# ProtectSystem=strict (232) and StateDirectory= (235) are unknown: /usr, /boot and /etc
# read-only, the state directory writable.
ProtectSystem=full
ReadWriteDirectories=/var/lib/ec2sec
# The unit's limits under the names systemd 219 knows (MemoryMax= is 231, StartLimit*Sec= 230).
MemoryLimit=$mem
StartLimitInterval=600
StartLimitBurst=5
# The unit's @groups (231) are unknown: reset its filter, deny by name.
SystemCallFilter=
SystemCallFilter=~$calls
SystemCallErrorNumber=EPERM
DROPIN
}

# systemd_before_235 writes or removes the drop-ins as this host's systemd needs; it fails
# only when it cannot write them.
systemd_before_235() {
	v=$(systemd_version)
	if [ -z "$v" ]; then
		echo "ec2sec: cannot tell the systemd version (systemctl --version): units left as shipped" >&2
		return 0
	fi
	for u in ec2sec.service ec2sec-imdswatch.service; do
		d=/etc/systemd/system/$u.d
		if [ "$v" -ge 235 ]; then
			# A drop-in from before a systemd upgrade would keep the unit on root.
			if [ -e "$d/$dropin" ]; then
				rm -f "$d/$dropin" || return 1
				rmdir "$d" 2>/dev/null
			fi
			continue
		fi
		mkdir -p "$d" &&
			dropin_text "$u" "$v" >"$d/.$dropin.new" &&
			chmod 0644 "$d/.$dropin.new" &&
			mv -f "$d/.$dropin.new" "$d/$dropin" || return 1
	done
	if [ "$v" -lt 235 ]; then
		echo "ec2sec: systemd $v (before 235): the services run as root with a capability bounding set ($dropin)"
		install -d -m 0700 -o 0 -g 0 /var/lib/ec2sec || return 1
	fi
	return 0
}
# ---------------------------------------------------------------------------------------------

# Before daemon-reload, also in an image build: the drop-ins are read at the next boot.
systemd_before_235 || {
	echo "ec2sec: cannot write the drop-ins for systemd before 235 ($dropin)" >&2
	exit 1
}
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	systemctl enable ec2sec.service ec2sec-imdswatch.service || exit 1
	# restart, not start: on an upgrade the new binary must take over. The watcher first (it
	# is ordered before the agent); where it cannot load, it says why in the agent's results,
	# which is no reason to fail the install.
	systemctl restart ec2sec-imdswatch.service || echo "ec2sec: the IMDS watcher did not start; see: journalctl -u ec2sec-imdswatch" >&2
	systemctl restart ec2sec.service || echo "ec2sec: the service did not start; see: journalctl -u ec2sec" >&2
else
	echo "ec2sec: systemd is not running: enabling the services for the next boot only"
	systemctl enable ec2sec.service ec2sec-imdswatch.service >/dev/null 2>&1 || true
fi
exit 0
