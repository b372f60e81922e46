#!/bin/bash
dnf install -y mariadb105-server
systemctl enable --now mariadb
mysql -uroot -prOeSb@BCo8Ir@94 -e "CREATE DATABASE shop; GRANT ALL ON shop.* TO 'shop'@'localhost';"
