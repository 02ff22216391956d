#!/usr/bin/env bash
# A primary and a streaming standby of it, on this machine, for the replica tests (and trying
# replica routing by hand): Debian's own tools only (pg_createcluster, pg_ctlcluster,
# pg_basebackup). The machine's main cluster is never touched.
#
#   yizhan_primary on 127.0.0.1:$PRIMARY_PORT (default 5440): wal_level=replica, trust on 127.0.0.1
#   yizhan_standby on 127.0.0.1:$STANDBY_PORT (default 5441): hot standby, streaming from the primary
#
# Idempotent: clusters that exist and stream are reused (started if down); a standby that is not
# streaming is rebuilt from a fresh pg_basebackup. Needs root (the postgres OS user owns the
# clusters). Prints "PRIMARY_PORT STANDBY_PORT" when both are up and the standby streams.
set -euo pipefail

PRIMARY=yizhan_primary
STANDBY=yizhan_standby
PRIMARY_PORT=${PRIMARY_PORT:-5440}
STANDBY_PORT=${STANDBY_PORT:-5441}

say() { echo "ensure-replica: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (pg_createcluster, and pg_basebackup as the postgres user)"
command -v pg_createcluster >/dev/null || die "postgresql-common is missing (scripts/ensure-postgis.sh installs it)"
version=$(pg_lsclusters --no-header | awk '$2 == "main" {print $1; exit}')
[ -n "$version" ] || version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)

# "online", "down", or "" (no such cluster); a standby's "online,recovery" counts as online.
status() { pg_lsclusters --no-header | awk -v v="$version" -v c="$1" '$1 == v && $2 == c {split($4, s, ","); print s[1]}'; }
psql_at() { runuser -u postgres -- psql -h 127.0.0.1 -p "$1" -U postgres -d postgres -qAtX -c "$2"; }
wait_ready() {
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p "$1" && return 0; sleep 0.5; done
  return 1
}
start() { pg_ctlcluster --skip-systemctl-redirect "$version" "$1" start; }

# Settings both clusters share. A standby must have at least the primary's max_connections
# and friends; hot_standby_feedback keeps the primary from vacuuming rows a standby query reads.
configure() {
  local name=$1 port=$2
  pg_conftool "$version" "$name" set port "$port"
  pg_conftool "$version" "$name" set listen_addresses localhost
  pg_conftool "$version" "$name" set wal_level replica
  pg_conftool "$version" "$name" set max_wal_senders 10
  pg_conftool "$version" "$name" set max_connections 200
  pg_conftool "$version" "$name" set hot_standby on
  pg_conftool "$version" "$name" set hot_standby_feedback on
  pg_conftool "$version" "$name" set shared_buffers 32MB
  local hba="/etc/postgresql/$version/$name/pg_hba.conf"
  cat >"$hba" <<EOF
# Written by scripts/ensure-replica.sh: a test pair on loopback only, no passwords.
local   all          postgres                  peer
local   all          all                       trust
host    all          all          127.0.0.1/32 trust
host    replication  all          127.0.0.1/32 trust
EOF
}

if [ -z "$(status $PRIMARY)" ]; then
  say "creating cluster $version/$PRIMARY on port $PRIMARY_PORT"
  pg_createcluster "$version" "$PRIMARY" -p "$PRIMARY_PORT" >/dev/null
  configure "$PRIMARY" "$PRIMARY_PORT"
fi
[ "$(status $PRIMARY)" = online ] || start "$PRIMARY"
wait_ready "$PRIMARY_PORT" || die "$PRIMARY does not accept connections on $PRIMARY_PORT"

streaming() {
  [ "$(status $STANDBY)" = online ] && wait_ready "$STANDBY_PORT" &&
    [ "$(psql_at "$STANDBY_PORT" "SELECT pg_is_in_recovery()" 2>/dev/null)" = t ] &&
    [ "$(psql_at "$PRIMARY_PORT" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null)" -ge 1 ]
}

if [ -n "$(status $STANDBY)" ]; then
  [ "$(status $STANDBY)" = online ] || start "$STANDBY" || true
  # A standby paused by an interrupted test run is resumed; one that is not streaming is rebuilt.
  psql_at "$STANDBY_PORT" "SELECT pg_wal_replay_resume()" >/dev/null 2>&1 || true
  for _ in $(seq 1 20); do streaming && break; sleep 0.5; done
  if ! streaming; then
    say "$STANDBY is not streaming from $PRIMARY: rebuilding it"
    pg_dropcluster --stop "$version" "$STANDBY"
  fi
fi
if [ -z "$(status $STANDBY)" ]; then
  say "creating $version/$STANDBY on port $STANDBY_PORT from a pg_basebackup of $PRIMARY"
  pg_createcluster "$version" "$STANDBY" -p "$STANDBY_PORT" >/dev/null
  configure "$STANDBY" "$STANDBY_PORT"
  data=$(pg_conftool -s "$version" "$STANDBY" show data_directory)
  find "$data" -mindepth 1 -delete
  # -R writes standby.signal and primary_conninfo; -X stream copies the WAL written meanwhile.
  runuser -u postgres -- pg_basebackup -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$data" -R -X stream -c fast
  start "$STANDBY"
  for _ in $(seq 1 60); do streaming && break; sleep 0.5; done
fi
streaming || die "$STANDBY on $STANDBY_PORT does not stream from $PRIMARY on $PRIMARY_PORT"
echo "$PRIMARY_PORT $STANDBY_PORT"
