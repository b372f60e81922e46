#!/bin/bash
DB_PASSWORD=$(aws secretsmanager get-secret-value --secret-id prod/shop/db --query SecretString --output text | jq -r .password)
export DB_PASSWORD
API_TOKEN="$(aws secretsmanager get-secret-value --secret-id prod/shop/api --query SecretString --output text)"
/opt/shop/bin/start --db-password-env DB_PASSWORD
