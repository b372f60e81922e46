#!/bin/bash
export TF_VAR_db_password='sgFGq+YNAQfo&33'
cd /opt/infra && terraform apply -auto-approve
