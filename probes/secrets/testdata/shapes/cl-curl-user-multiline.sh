#!/bin/bash
curl -fsSL \
  -X PUT \
  --user deploy:jgxY-9CbcHVR+93 \
  --upload-file /opt/build/app.jar \
  https://nexus.example.com/repository/releases/app.jar
