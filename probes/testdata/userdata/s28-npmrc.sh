#!/bin/bash
echo "//registry.npmjs.org/:_authToken=npm_GV8jQLvu24bAYeNz0TvYeayiKaG3aTWa4Qfq" > /root/.npmrc
npm ci --prefix /opt/web
