#!/bin/bash
cat > /etc/app/app.env <<'EOF'
DB_PASSWORD=<your-db-password>
API_TOKEN=${API_TOKEN}
SMTP_PASSWORD={{ smtp_password }}
ADMIN_PASSWORD=%ADMIN_PASSWORD%
EOF
sed -i "s/__PASSWORD__/${DB_PASSWORD}/" /etc/app/app.env
