#!/bin/bash
sshpass -f /root/.deploy-pass rsync -a /srv/www/ deploy@10.0.3.7:/srv/www/
SSHPASS=$(cat /run/secrets/deploy) sshpass -e ssh deploy@10.0.3.7 uptime
htpasswd -c /etc/nginx/.htpasswd admin
htpasswd -b /etc/nginx/.htpasswd admin "$ADMIN_PASSWORD"
