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
# /usr/local/bin/ec2sec, the units in /etc/systemd/system, the same config path.
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
