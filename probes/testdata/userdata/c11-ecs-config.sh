#!/bin/bash
cat >> /etc/ecs/ecs.config <<EOF
ECS_CLUSTER=prod-shop
ECS_ENABLE_TASK_IAM_ROLE=true
ECS_ENABLE_CONTAINER_METADATA=true
ECS_CONTAINER_INSTANCE_TAGS={"team": "shop", "env": "prod"}
EOF
