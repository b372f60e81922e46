#!/bin/sh
# ec2sec deb postrm / rpm %postun: forget the removed units; a deb purge also deletes the state
# (spool, last-reported state, the IMDS watch summary; DynamicUser keeps it under
# /var/lib/private).
set -u
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
if [ "${1:-}" = purge ]; then
	rm -rf /var/lib/private/ec2sec /var/lib/ec2sec
fi
exit 0
