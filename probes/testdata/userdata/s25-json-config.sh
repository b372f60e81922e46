#!/bin/bash
cat > /opt/app/config.json <<'EOF'
{
  "db": {"host": "db.internal", "user": "app", "password": "fDDkf@3AdDh2^54"},
  "apiKey": "h6rlhplotwfntpzbrlpa91iftltql478kpv0ce8w"
}
EOF
