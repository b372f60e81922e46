#!/bin/sh
# ec2sec uninstall script for AWS Systems Manager Distributor (Linux).
#
# POSIX sh, run as root by SSM with `sh uninstall.sh`; exit 0 is success. Idempotent: with
# nothing installed it succeeds. It removes the deb/rpm (keeping /etc/ec2sec/config.yaml, as a
# package removal does) or the files install.sh put there itself. Distributor upgrades run the
# old version's uninstall.sh and then the new install.sh, so the config and the state directory
# (spool and last-reported state) are kept.
#
# EC2SEC_ROOT=DIR works under DIR instead of / and never touches the service manager.
set -u

root=${EC2SEC_ROOT:-}
root=${root%/}

say() { echo "ec2sec uninstall: $*"; }
die() {
	echo "ec2sec uninstall: $*" >&2
	exit 1
}

if [ -z "$root" ] && command -v dpkg-query >/dev/null 2>&1 &&
	dpkg-query -W -f='${Status}' ec2sec 2>/dev/null | grep -q 'install ok installed'; then
	say "removing the ec2sec deb"
	DEBIAN_FRONTEND=noninteractive dpkg --remove ec2sec || die "dpkg --remove failed"
	exit 0
fi
if [ -z "$root" ] && command -v rpm >/dev/null 2>&1 && rpm -q ec2sec >/dev/null 2>&1; then
	say "removing the ec2sec rpm"
	rpm -e ec2sec || die "rpm -e failed"
	exit 0
fi

unit="$root/etc/systemd/system/ec2sec.service"
watch_unit="$root/etc/systemd/system/ec2sec-imdswatch.service"
bin="$root/usr/local/bin/ec2sec"
if [ ! -e "$unit" ] && [ ! -e "$watch_unit" ] && [ ! -e "$bin" ]; then
	say "ec2sec is not installed under ${root:-/}; nothing to do"
	exit 0
fi
if [ -n "$root" ]; then
	say "working under $root: not touching the service manager"
elif ! command -v systemctl >/dev/null 2>&1; then
	say "systemctl not found: no service to stop"
elif [ ! -d /run/systemd/system ]; then
	say "systemd is not running here (no /run/systemd/system): no service to stop"
else
	systemctl stop ec2sec.service ec2sec-imdswatch.service 2>/dev/null || true
	systemctl disable ec2sec.service ec2sec-imdswatch.service 2>/dev/null || true
fi
# The drop-ins the installer writes where systemd is older than 235 (not package files).
for u in ec2sec.service ec2sec-imdswatch.service; do
	rm -f "$root/etc/systemd/system/$u.d/50-systemd-before-235.conf"
	rmdir "$root/etc/systemd/system/$u.d" 2>/dev/null
done
rm -f "$unit" "$watch_unit" "$bin" || die "cannot remove $unit, $watch_unit or $bin"
if [ -z "$root" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
say "removed $bin, $unit and $watch_unit (kept ${root}/etc/ec2sec/config.yaml and the state directory)"
exit 0
