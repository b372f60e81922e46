#!/bin/bash
mysqldump --user=backup --password=3AfdS=flkxsq@70 --all-databases | gzip > /backup/all.sql.gz
