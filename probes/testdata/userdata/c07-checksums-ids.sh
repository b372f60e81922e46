#!/bin/bash
curl -fsSLo /tmp/node_exporter.tar.gz https://github.com/prometheus/node_exporter/releases/download/v1.8.2/node_exporter-1.8.2.linux-amd64.tar.gz
echo "6809dd0b3ec45fd6e992c19071d6b5253aed3ead7bf0686885a51d85c6643c66  /tmp/node_exporter.tar.gz" | sha256sum -c -
aws ec2 describe-images --image-ids ami-0abcdef1234567890 --region eu-central-1
echo "instance i-0123456789abcdef0 subnet subnet-0a1b2c3d4e5f67890 sg-0fedcba9876543210"
REQUEST_ID=5f0c8a64-1b7e-4d35-9c2a-7e8f9a0b1c2d
