#!/bin/bash
cat > /etc/default/api <<EOF
DB_HOST=db.internal
DB_PASSWORD=9bdu6-H18vmv^99
API_SECRET=66BLnC4hWj8LIQG3h6GtLN0deruroBh8mKL2V0KaqNKURaeF
EOF
