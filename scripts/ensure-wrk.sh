#!/usr/bin/env bash
# wrk, the HTTP load generator bench/throughput.py drives (Debian package). Installs when missing (root only).
set -euo pipefail
command -v wrk >/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure-wrk: ERROR: need root to install wrk (apt-get install wrk)" >&2
  exit 1
fi
echo "ensure-wrk: installing Debian package: wrk" >&2
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
