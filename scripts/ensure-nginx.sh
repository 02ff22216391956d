#!/usr/bin/env bash
# Debian's nginx, and the curl (HTTP/2) and openssl (a self-signed certificate) that
# tests/test_deploy_nginx.py drives it with: the HTTPS front of deploy/nginx/yizhan.conf, as
# production runs it. Installs what is missing (root only).
set -euo pipefail
missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure-nginx: ERROR: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "ensure-nginx: installing Debian packages: ${missing[*]}" >&2
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
