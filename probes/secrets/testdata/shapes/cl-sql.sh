#!/bin/bash
mysql -uroot -e "CREATE USER 'shop'@'%' IDENTIFIED BY '4UhI=Hraao9B+79';"
mysql -uroot -e "GRANT ALL ON shop.* TO 'shop'@'%';"
sudo -u postgres psql -c "ALTER USER postgres WITH PASSWORD 'gsau%QPgFxix@34';"
sudo -u postgres psql -c "CREATE ROLE app LOGIN ENCRYPTED PASSWORD '75Ig=OdPugmt^18';"
