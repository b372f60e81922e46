#!/bin/sh
# ec2sec deb prerm / rpm %preun: stop and disable the services (the agent and the IMDS
# watcher) when the package is removed.
# On an upgrade (deb: "upgrade", rpm: $1 = 1) it does nothing: the new package's postinstall
# restarts the services, and stopping here would stop the new version on rpm, whose old %preun
# runs after the new %post.
set -u
case "${1:-}" in
remove | deconfigure | 0) ;;
*) exit 0 ;;
esac
if command -v systemctl >/dev/null 2>&1; then
	if [ -d /run/systemd/system ]; then
		systemctl stop ec2sec.service ec2sec-imdswatch.service || true
	fi
	systemctl disable ec2sec.service ec2sec-imdswatch.service >/dev/null 2>&1 || true
fi
exit 0
