#!/bin/bash
redis-cli -u "redis://:${REDIS_PASSWORD}@cache.internal:6379" ping
redis-cli -u redis://cache.internal:6379 ping
