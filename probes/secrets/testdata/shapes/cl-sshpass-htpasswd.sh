#!/bin/bash
sshpass -p '3tMv-k570sd0^60' rsync -a /srv/www/ deploy@10.0.3.7:/srv/www/
htpasswd -b -c /etc/nginx/.htpasswd admin FdBb#SrzezOm=60
