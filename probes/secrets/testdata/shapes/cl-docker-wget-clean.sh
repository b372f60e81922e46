#!/bin/bash
aws ecr get-login-password --region eu-west-1 | docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com
wget --ask-password --user ci https://artifacts.example.com/app.tgz
wget --password="$ARTIFACT_PASSWORD" https://artifacts.example.com/app.tgz
