#!/bin/bash
set -euo pipefail
yum install -y awscli jq
export AWS_ACCESS_KEY_ID=AKIA5HGAZYXDOWG7M6RX
export AWS_SECRET_ACCESS_KEY=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
export AWS_DEFAULT_REGION=eu-west-1
aws s3 cp s3://deploy-artifacts-prod/app.tar.gz /opt/app.tar.gz
