#!/bin/bash
export AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1
git clone https://github.com/aws-samples/aws-cdk-examples.git /opt/examples
pip3 install --index-url https://pypi.org/simple boto3==1.35.0
echo "password authentication disabled" | logger -t bootstrap
