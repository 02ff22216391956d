#!/usr/bin/env bash
# Debian packages the tests and benchmarks drive, installed when missing (root only).
# Each argument is a command to look for, or PROBE=PACKAGE when the package is named otherwise or
# its program is outside root's PATH (/usr/sbin/pgbouncer=pgbouncer).
#   wrk: bench/throughput.py's HTTP load generator
#   pgbouncer: the pooler tests/test_pgbouncer.py puts in front of PostgreSQL (deploy/pgbouncer.ini)
#   nginx, curl (HTTP/2), openssl (a self-signed certificate): tests/test_deploy_nginx.py
set -euo pipefail
missing=()
for wanted in "$@"; do
  probe=${wanted%%=*} package=${wanted#*=}
  if [[ $probe == /* ]]; then [ -x "$probe" ] && continue; else command -v "$probe" >/dev/null && continue; fi
  missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure-debs: ERROR: need root to install: ${missing[*]} (apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "ensure-debs: installing Debian packages: ${missing[*]}" >&2
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
