#!/bin/bash
cat > /etc/shop.env <<'EOF'
SLACK_WEBHOOK=https://hooks.slack.com/services/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
STRIPE_KEY=sk_live_4uQ7ziEb1nJiJRJ2o5PQ5GatXKHOPB5e
EOF
systemctl restart shop
