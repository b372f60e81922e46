#!/bin/bash
cat > /home/ec2-user/.aws/credentials <<EOF
[tmp]
aws_access_key_id = ASIAFFETOU5LZRJAYYI6
aws_secret_access_key = ZwqUhCCiRLCN+4bfcjsEQObFMZGxOPrcxL5wTBg3
aws_session_token = IQoJb3JpZ2luX2VjERNTUWrAonaGVisAonW6i+iRDFcDQpy9A/gVDnzipBWLcm33bC89sTV1mBqgIKnkS/IQGhLH7wFLwBTyAuGGYUxfmolF6jwaYHPb9WY0+exIAYJxoo+CVE1VHBA+9bw03jcHbYN/22Zg7GJiX2FjspVnAFsPkFuh4e9lFWdYzEw361H7W8hADXmyc4+bJhypH2c0YN+VU7nhx8MdbeqNgc7MUpJxeVzaHzHgmg8vC+4gg/BuI28Mb/gLvu/KSmMG1bjLeAXK8PGA/NgZ7UWyGfGnqreYEPkz/IREzKjWAzBAh==
EOF
