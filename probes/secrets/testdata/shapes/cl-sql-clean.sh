#!/bin/bash
mysql -uroot -e "CREATE USER 'shop'@'%' IDENTIFIED BY '${SHOP_DB_PASSWORD}';"
mysql -uroot -e "CREATE USER 'ro'@'%' IDENTIFIED BY PASSWORD '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9';"
sudo -u postgres psql -c "CREATE ROLE app LOGIN ENCRYPTED PASSWORD 'md5a3556571e93b0d20722ba62be61e8c2d';"
sudo -u postgres psql -c "ALTER ROLE app PASSWORD '{{ app_db_password }}';"
sudo -u postgres psql -c "CREATE USER report WITH PASSWORD 'changeme';"
