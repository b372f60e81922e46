#!/bin/bash
DB_ROOT_PASSWORD=$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)
mysql -u root -p -e 'select 1'
mariadb -uroot -p"$DB_ROOT_PASSWORD" shop < /opt/schema.sql
mysqladmin -u root password "${DB_ROOT_PASSWORD}"
