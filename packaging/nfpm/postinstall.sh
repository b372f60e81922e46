#!/bin/sh
# ec2sec deb postinst / rpm %post: enable the services and (re)start them where systemd runs:
# ec2sec.service, the agent, and ec2sec-imdswatch.service, the IMDS watcher in its own minimal
# unit (docs/imds-watch.md). In an image build or a container without systemd it only enables
# them, for the next boot.
set -u
if ! command -v systemctl >/dev/null 2>&1; then
	echo "ec2sec: systemctl not found: not enabling the services"
	exit 0
fi
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
