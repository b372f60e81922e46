#!/bin/bash
aws configure set aws_access_key_id AKIAZXUKCOGNNY2Z6DXU --profile deploy
aws configure set aws_secret_access_key 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 --profile deploy
aws configure set region us-east-2 --profile deploy
aws --profile deploy ecr get-login-password | docker login --username AWS --password-stdin 123456789012.dkr.ecr.us-east-2.amazonaws.com
