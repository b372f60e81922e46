#!/bin/bash
export GITHUB_TOKEN=ghp_mpFBwFKA0sayAYj626HqwZGxomRXKdaoNLTA
curl -sH "Authorization: token $GITHUB_TOKEN" https://api.github.com/repos/acme/app/releases/latest | jq -r .tarball_url
