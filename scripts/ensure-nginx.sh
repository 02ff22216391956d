#!/usr/bin/env bash
# Debian's nginx: the HTTPS front the deploy test (tests/test_deploy_nginx.py) starts with
# deploy/nginx/yizhan.conf, as production runs it. Installs when missing (root only).
set -euo pipefail
[ -x /usr/sbin/nginx ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure-nginx: ERROR: need root to install nginx (apt-get install nginx)" >&2
  exit 1
fi
echo "ensure-nginx: installing Debian package: nginx" >&2
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
