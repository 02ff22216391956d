#!/usr/bin/env bash
# Lighthouse (mobile emulation: Moto G-class phone, slow 4G) against the app served by
# gunicorn with the demo data, three runs; prints each run's scores and the medians.
#   make bench-lighthouse            (RUNS=5 make bench-lighthouse for more runs)
# Tiles: YIZHAN_TILES=none by default, since this machine has no internet and failing
# tile requests would be counted against the page; set YIZHAN_TILES=osm where tiles load.
set -euo pipefail
cd "$(dirname "$0")/.."
LH_DIR=bench/.lighthouse
RUNS=${RUNS:-3}
PORT=${PORT:-8799}
mkdir -p bench/out
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's nodejs and npm…" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "lighthouse needs Node.js and npm: apt-get install nodejs npm" >&2; exit 1
  fi
fi
if [ ! -x "$LH_DIR/node_modules/.bin/lighthouse" ]; then
  echo "installing lighthouse@12.2.3 into $LH_DIR (npm)…" >&2
  npm install --prefix "$LH_DIR" --no-audit --no-fund --loglevel=error lighthouse@12.2.3 >&2
fi
YIZHAN_TILES=${YIZHAN_TILES:-none} .venv/bin/gunicorn --workers 2 --bind "127.0.0.1:$PORT" wsgi:app \
  >bench/out/lighthouse-server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/api/v1/meta" >/dev/null && break; sleep 0.2; done
url="http://127.0.0.1:$PORT/?lat=27.83&lng=113.15"
for i in $(seq 1 "$RUNS"); do
  CHROME_PATH=/usr/bin/chromium "$LH_DIR/node_modules/.bin/lighthouse" "$url" --quiet \
    --only-categories=performance,accessibility,best-practices,seo \
    --chrome-flags="--headless=new --no-sandbox --disable-gpu --disable-background-networking --disable-quic --no-first-run" \
    --output=json --output-path="bench/out/lighthouse-$i.json"
done
.venv/bin/python - "$RUNS" <<'PY'
import json, statistics, sys
runs = int(sys.argv[1])
cats = ["performance", "accessibility", "best-practices", "seo"]
scores = {c: [] for c in cats}
metrics = {"first-contentful-paint": [], "largest-contentful-paint": [], "total-blocking-time": [], "cumulative-layout-shift": []}
for i in range(1, runs + 1):
    report = json.load(open(f"bench/out/lighthouse-{i}.json"))
    row = {c: round(report["categories"][c]["score"] * 100) for c in cats}
    for c in cats:
        scores[c].append(row[c])
    for m in metrics:
        metrics[m].append(report["audits"][m]["numericValue"])
    failed = [a["id"] for a in report["audits"].values() if a.get("score") is not None and a["score"] < 0.9
              and a.get("scoreDisplayMode") == "binary"]
    print(f"run {i}: " + "  ".join(f"{c} {row[c]}" for c in cats) + (f"   (failed: {', '.join(failed)})" if failed else ""))
print("median: " + "  ".join(f"{c} {statistics.median(scores[c]):.0f}" for c in cats))
print("median metrics: FCP {:.0f} ms, LCP {:.0f} ms, TBT {:.0f} ms, CLS {:.3f}".format(
    *(statistics.median(metrics[m]) for m in metrics)))
PY
