#!/bin/sh
# ec2sec install script for AWS Systems Manager Distributor (Linux).
#
# SSM runs it as root with `sh install.sh` (dash on Debian and Ubuntu: POSIX sh only) from the
# unpacked package directory; exit 0 is success, any other code a failed install. It is
# idempotent: running it again installs the same files and leaves the service running.
#
# Where dpkg (Debian, Ubuntu) or rpm (Amazon Linux, RHEL and relatives, SUSE) is the system's
# package manager it installs ec2sec.deb or ec2sec.rpm: binary /usr/bin/ec2sec, units
# /usr/lib/systemd/system/ec2sec.service (the agent) and ec2sec-imdswatch.service (the IMDS
# watcher, docs/imds-watch.md), config /etc/ec2sec/config.yaml; the package's own scripts
# enable and start the services. Elsewhere it installs the files itself: binary
# /usr/local/bin/ec2sec, the units in /etc/systemd/system, the same config path, and where
# systemd is older than 235 (Amazon Linux 2) a drop-in for each unit (systemd_before_235).
#
# EC2SEC_ROOT=DIR installs the fallback files under DIR instead of / (tests, image trees); the
# system's service manager is then never touched.
set -u

here=$(cd "$(dirname "$0")" && pwd) || exit 1
root=${EC2SEC_ROOT:-}
root=${root%/}

say() { echo "ec2sec install: $*"; }
die() {
	echo "ec2sec install: $*" >&2
	exit 1
}

# systemd_here tells whether this system's systemd can be asked to enable and start units.
systemd_here() {
	if [ -n "$root" ]; then
		say "installing under $root: not enabling or starting the service (systemctl would act on this host, not on $root)"
		return 1
	fi
	if ! command -v systemctl >/dev/null 2>&1; then
		say "systemctl not found: not enabling or starting the service"
		return 1
	fi
	if [ ! -d /run/systemd/system ]; then
		say "systemd is not running here (no /run/systemd/system): not enabling or starting the service"
		return 1
	fi
	return 0
}

uses_dpkg() { [ -z "$root" ] && command -v dpkg >/dev/null 2>&1 && [ -f /var/lib/dpkg/status ] && [ -f "$here/ec2sec.deb" ]; }
uses_rpm() { [ -z "$root" ] && command -v rpm >/dev/null 2>&1 && rpm -q --whatprovides /bin/sh >/dev/null 2>&1 && [ -f "$here/ec2sec.rpm" ]; }

# remove_fallback removes files an earlier fallback install left, so they cannot shadow the
# package's (a unit in /etc/systemd/system overrides the one in /usr/lib).
remove_fallback() {
	if [ -f /etc/systemd/system/ec2sec.service ] && grep -q '^ExecStart=/usr/local/bin/ec2sec ' /etc/systemd/system/ec2sec.service; then
		say "removing the earlier non-package install"
		rm -f /etc/systemd/system/ec2sec.service /usr/local/bin/ec2sec
	fi
	if [ -f /etc/systemd/system/ec2sec-imdswatch.service ] && grep -q '^ExecStart=/usr/local/bin/ec2sec ' /etc/systemd/system/ec2sec-imdswatch.service; then
		rm -f /etc/systemd/system/ec2sec-imdswatch.service
	fi
}

if uses_dpkg; then
	say "installing ec2sec.deb with dpkg"
	remove_fallback
	DEBIAN_FRONTEND=noninteractive dpkg --force-confold -i "$here/ec2sec.deb" || die "dpkg -i failed"
	exit 0
fi
if uses_rpm; then
	say "installing ec2sec.rpm with rpm"
	remove_fallback
	# -U installs or upgrades; --replacepkgs makes a re-install of the same version succeed.
	rpm -U --replacepkgs "$here/ec2sec.rpm" || die "rpm -U failed"
	exit 0
fi

if [ -n "$root" ]; then
	say "installing the binary and units under $root"
else
	say "no dpkg or rpm package manager here: installing the binary and units"
fi
for f in ec2sec ec2sec.service ec2sec-imdswatch.service config.yaml; do
	[ -f "$here/$f" ] || die "$f missing from the package"
done
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/ec2sec" || die "cannot create directories under ${root:-/}"
# Copy to a temporary name and rename: a running binary is replaced, not overwritten.
cp "$here/ec2sec" "$root/usr/local/bin/.ec2sec.new" &&
	chmod 0755 "$root/usr/local/bin/.ec2sec.new" &&
	mv -f "$root/usr/local/bin/.ec2sec.new" "$root/usr/local/bin/ec2sec" || die "cannot install $root/usr/local/bin/ec2sec"
for u in ec2sec.service ec2sec-imdswatch.service; do
	sed -e 's#^ExecStart=/usr/bin/ec2sec #ExecStart=/usr/local/bin/ec2sec #' \
		-e 's#^ConditionFileIsExecutable=/usr/bin/ec2sec$#ConditionFileIsExecutable=/usr/local/bin/ec2sec#' \
		"$here/$u" >"$root/etc/systemd/system/.$u.new" &&
		chmod 0644 "$root/etc/systemd/system/.$u.new" &&
		mv -f "$root/etc/systemd/system/.$u.new" "$root/etc/systemd/system/$u" || die "cannot install the unit $u"
done
# The config is the administrator's once installed: never overwritten.
# A new config takes the Security Hub mode the installer was given (the central stack's
# association passes SSM_EC2SEC_HUB_MODE=central; docs/forwarder.md).
mode=${SSM_EC2SEC_HUB_MODE:-${EC2SEC_HUB_MODE:-}}
case $mode in
"" | central | direct) ;;
*) die "EC2SEC_HUB_MODE '$mode': want central or direct" ;;
esac
if [ ! -e "$root/etc/ec2sec/config.yaml" ]; then
	cp "$here/config.yaml" "$root/etc/ec2sec/.config.yaml.new" || die "cannot install the config"
	if [ -n "$mode" ]; then
		printf '\n# Set by the installer (EC2SEC_HUB_MODE).\nsecurity_hub:\n  mode: %s\n' "$mode" >>"$root/etc/ec2sec/.config.yaml.new" || die "cannot install the config"
	fi
	chmod 0644 "$root/etc/ec2sec/.config.yaml.new" &&
		mv -f "$root/etc/ec2sec/.config.yaml.new" "$root/etc/ec2sec/config.yaml" || die "cannot install the config"
else
	say "keeping the existing $root/etc/ec2sec/config.yaml"
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

# Under EC2SEC_ROOT this host's systemd says nothing about the tree's.
if [ -z "$root" ] && command -v systemctl >/dev/null 2>&1; then
	systemd_before_235 || die "cannot write the drop-ins for systemd before 235 ($dropin)"
fi
if systemd_here; then
	systemctl daemon-reload || die "systemctl daemon-reload failed"
	systemctl enable ec2sec.service ec2sec-imdswatch.service || die "systemctl enable failed"
	# The watcher first (ordered before the agent). Where it cannot load, the agent's imdswatch
	# checks say why: no reason to fail the install.
	systemctl restart ec2sec-imdswatch.service || say "the IMDS watcher did not start; see: journalctl -u ec2sec-imdswatch"
	systemctl restart ec2sec.service || die "the service did not start; see: journalctl -u ec2sec"
	say "ec2sec.service and ec2sec-imdswatch.service enabled and running"
fi
say "installed $root/usr/local/bin/ec2sec"
exit 0
