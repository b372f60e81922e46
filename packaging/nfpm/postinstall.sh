#!/bin/sh
# ec2sec deb postinst / rpm %post: enable the service and (re)start it where systemd runs.
# In an image build or a container without systemd it only enables it, for the next boot.
set -u
if ! command -v systemctl >/dev/null 2>&1; then
	echo "ec2sec: systemctl not found: not enabling the service"
	exit 0
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	systemctl enable ec2sec.service || exit 1
	# restart, not start: on an upgrade the new binary must take over.
	systemctl restart ec2sec.service || echo "ec2sec: the service did not start; see: journalctl -u ec2sec" >&2
else
	echo "ec2sec: systemd is not running: enabling the service for the next boot only"
	systemctl enable ec2sec.service >/dev/null 2>&1 || true
fi
exit 0
