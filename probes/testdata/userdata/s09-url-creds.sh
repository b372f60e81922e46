#!/bin/bash
git clone https://deploy:ghp_JYEAKr1jwF3kVhpdaCbEjquazkrtQiXCMCgL@github.com/acme/infra-config.git /opt/config
cat >> /etc/environment <<EOF
DATABASE_URL=postgres://app:v8WdE+hHkZna*29@db.internal:5432/app
EOF
