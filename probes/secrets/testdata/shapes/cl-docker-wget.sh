#!/bin/bash
docker login -u ci --password adjQ^2rOd69d#39 registry.example.com
wget --http-user=ci --http-password=7P17!XiNAtTD=95 -O /opt/app.tgz https://artifacts.example.com/app.tgz
