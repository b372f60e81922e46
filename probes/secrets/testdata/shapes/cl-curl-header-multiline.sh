#!/bin/bash
curl -s \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer bAOc75vGT2PYzJ7Uc4AKz22T4bdRjuE16HisXdGd" \
  -d '{"event":"boot"}' \
  https://hooks.example.com/v1/events
