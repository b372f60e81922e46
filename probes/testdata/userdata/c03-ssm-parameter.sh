#!/bin/bash
export API_KEY=$(aws ssm get-parameter --name /shop/prod/api-key --with-decryption --query Parameter.Value --output text)
REDIS_PASSWORD=`aws ssm get-parameter --name /shop/prod/redis --with-decryption --query Parameter.Value --output text`
echo "REDIS_PASSWORD=${REDIS_PASSWORD}" >> /etc/shop.env
