#!/bin/bash
set -euo pipefail
dnf install -y mariadb105-server
systemctl enable --now mariadb
mariadb -u root -paVdO_ySZY53I_47 -e "CREATE DATABASE wiki"
mysqladmin -u root password 'S8KV^jHzfYtU_78'
