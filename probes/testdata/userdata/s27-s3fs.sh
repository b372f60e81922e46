#!/bin/bash
yum install -y s3fs-fuse
echo AKIAKUDFXN4DKOOSD5VG:lLFTjGCR6IlB2uMbnzdMiUyxjNQmeEf3pDBrPej2 > /etc/passwd-s3fs
chmod 600 /etc/passwd-s3fs
s3fs media-prod /mnt/media -o passwd_file=/etc/passwd-s3fs
