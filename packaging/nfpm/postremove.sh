#!/bin/sh
# ec2sec deb postrm / rpm %postun: forget the removed units; a deb purge also deletes the state
# (spool, last-reported state, the IMDS watch summary; DynamicUser keeps it under
# /var/lib/private).
set -u
# On removal (not on an upgrade: deb "upgrade", rpm $1 = 1) also the drop-ins postinstall
# wrote where systemd is older than 235; they are no package's files.
case "${1:-}" in
remove | purge | 0)
	for u in ec2sec.service ec2sec-imdswatch.service; do
		rm -f "/etc/systemd/system/$u.d/50-systemd-before-235.conf"
		rmdir "/etc/systemd/system/$u.d" 2>/dev/null
	done
	;;
esac
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
if [ "${1:-}" = purge ]; then
	rm -rf /var/lib/private/ec2sec /var/lib/ec2sec
fi
exit 0
