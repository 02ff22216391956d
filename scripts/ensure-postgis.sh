#!/usr/bin/env bash
# Make sure a PostgreSQL with PostGIS (and pgRouting) is reachable for tests and benchmarks; print its URL.
#
# - TEST_DATABASE_URL set: check it (server reachable, PostGIS available) and print it.
# - Otherwise: use this machine's cluster. Install the Debian packages when missing
#   (root only), start the cluster when it is down, create a role for the current
#   OS user and a database `yizhan_test`, and print a Unix-socket URL to it.
# Fails loudly with the reason: the suite never silently skips PostGIS.
set -euo pipefail

say() { echo "ensure-postgis: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
PY=${PY:-.venv/bin/python}

check_url() {
  "$PY" - "$1" <<'PYEOF'
import sys
import psycopg
url = sys.argv[1].replace("postgresql+psycopg://", "postgresql://")
try:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone()
except Exception as exc:
    sys.exit(f"cannot connect to {url}: {exc}")
if not row:
    sys.exit(f"PostGIS is not installed on the server behind {url}")
PYEOF
}

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  check_url "$TEST_DATABASE_URL" || die "TEST_DATABASE_URL is not usable"
  echo "$TEST_DATABASE_URL"
  exit 0
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else die "need root to run: $*"; fi; }
apt_install() {
  say "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v pg_lsclusters >/dev/null || apt_install postgresql
version=$(pg_lsclusters --no-header | awk 'NR==1 {print $1}')
if [ -z "$version" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  say "creating cluster $version/main"
  as_root pg_createcluster "$version" main >/dev/null
fi
# Check the server libraries, not just the SQL scripts: removing one package can leave the other half.
has_lib() { compgen -G "/usr/lib/postgresql/$version/lib/$1" >/dev/null; }
missing=()
{ has_lib "postgis-3.so" && [ -e "/usr/share/postgresql/$version/extension/postgis.control" ]; } \
  || missing+=("postgresql-$version-postgis-3")
# pgRouting: the reference peer in bench/isochrone.py
{ has_lib "libpgrouting-*.so" && [ -e "/usr/share/postgresql/$version/extension/pgrouting.control" ]; } \
  || missing+=("postgresql-$version-pgrouting")
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
status=$(pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main" {print $4}')
if [ "$status" != "online" ]; then
  say "starting PostgreSQL $version/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi

socket_dir=/var/run/postgresql
me=$(id -un)
psql_admin() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- psql -h "$socket_dir" -qAtX "$@"; else psql -h "$socket_dir" -qAtX "$@"; fi; }
for _ in $(seq 1 30); do pg_isready -q -h "$socket_dir" && break; sleep 1; done
pg_isready -q -h "$socket_dir" || die "PostgreSQL $version/main does not accept connections"
if [ "$(id -u)" != 0 ] && ! psql_admin -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
  die "no PostgreSQL role for $me: run 'sudo -u postgres createuser -s $me' once, or set TEST_DATABASE_URL"
fi
if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$me'")" != 1 ]; then
  say "creating superuser role $me"
  psql_admin -d postgres -c "CREATE ROLE \"$me\" LOGIN SUPERUSER"
fi
if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'yizhan_test'")" != 1 ]; then
  say "creating database yizhan_test"
  psql_admin -d postgres -c "CREATE DATABASE yizhan_test OWNER \"$me\""
fi
url="postgresql:///yizhan_test?host=$socket_dir"
check_url "$url" || die "the local test database is not usable"
echo "$url"
