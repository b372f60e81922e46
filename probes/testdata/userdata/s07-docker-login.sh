#!/bin/bash
yum install -y docker && systemctl start docker
docker login -u ci-bot -p dckr_pat_0OuHSny0DrNxNmJA4luSa8AIJox registry.example.org
docker run -d -p 80:8080 registry.example.org/shop/web:1.4.2
