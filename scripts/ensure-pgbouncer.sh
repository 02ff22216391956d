#!/usr/bin/env bash
# PgBouncer (Debian package), the connection pooler the tests put in front of PostgreSQL
# (tests/test_pgbouncer.py) and deploy/pgbouncer.ini configures. Installs when missing (root only).
set -euo pipefail
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure-pgbouncer: ERROR: need root to install pgbouncer (apt-get install pgbouncer)" >&2
  exit 1
fi
echo "ensure-pgbouncer: installing Debian package: pgbouncer" >&2
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
