#!/bin/bash
redis-cli -u redis://:r1wN+iVj4joE-09@cache.internal:6379 CONFIG SET maxmemory 256mb
