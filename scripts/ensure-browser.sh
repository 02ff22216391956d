#!/usr/bin/env bash
# Debian's Chromium for the browser tests, and CJK fonts so Chinese renders (not boxes) in
# screenshots. The product itself uses system fonts only. Installs when missing (root only).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-browser: ERROR: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "ensure-browser: installing Debian packages: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
