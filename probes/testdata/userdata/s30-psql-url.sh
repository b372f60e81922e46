#!/bin/bash
psql "postgresql://admin:0nInw?agdom7*14@analytics.cluster-abc.eu-west-1.rds.amazonaws.com:5432/warehouse" -f /opt/schema.sql
