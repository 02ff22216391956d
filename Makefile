# Yizhan: `make run` to serve the demo, `make test` to run the whole suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2

.PHONY: setup python browser tools pgbouncer nginx db demo run test bench bench-network bench-throughput bench-live bench-lighthouse bench-sensors bench-search bench-load clean

## setup: everything `run`, `test` and the benchmarks need (idempotent)
setup: python db demo browser tools pgbouncer nginx
	@PY=$(PY) scripts/ensure-postgis.sh >/dev/null

## tools: wrk, the HTTP load generator of bench-throughput
tools:
	@scripts/ensure-debs.sh wrk

## pgbouncer: the connection pooler the tests run in front of PostgreSQL (deploy/pgbouncer.ini)
pgbouncer:
	@scripts/ensure-debs.sh /usr/sbin/pgbouncer=pgbouncer

## nginx: Debian's nginx, which the deployment tests put in front of gunicorn (deploy/nginx/yizhan.conf)
nginx:
	@scripts/ensure-debs.sh /usr/sbin/nginx=nginx curl openssl

## browser: Debian's Chromium and CJK fonts for the browser tests
browser:
	@scripts/ensure-browser.sh

python: $(STAMP)

$(STAMP): requirements.txt
	@command -v python3 >/dev/null || { echo "python3 is missing (apt-get install python3 python3-venv)"; exit 1; }
	@test -x $(VENV)/bin/pip || { rm -rf $(VENV); python3 -m venv $(VENV); } || \
	  { rm -rf $(VENV); echo "python3 -m venv failed: apt-get install python3-venv"; exit 1; }
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-* && touch $@

## db: create or upgrade the schema of DATABASE_URL (default: SQLite in instance/)
db: python
	$(FLASK) db upgrade

## demo: load the Zhuzhou demo stations (re-running updates, never duplicates), a demo
## organisation with its 站长 and a few reports, and print the demo logins (demo data only)
demo: db
	$(FLASK) stations import data/demo/zhuzhou_demo.csv --coordsys gcj02 --source demo
	@YIZHAN_SECRET_KEY="$(DEV_SECRET)" $(FLASK) ops demo

# Development only: one secret for every worker and restart (sessions, tracking links), kept in
# instance/ unless YIZHAN_SECRET_KEY is set. Production sets YIZHAN_SECRET_KEY itself.
DEV_SECRET = $${YIZHAN_SECRET_KEY:-$$(test -s instance/secret_key || { mkdir -p instance && \
	$(PY) -c 'import secrets; print(secrets.token_urlsafe(48))' > instance/secret_key; }; cat instance/secret_key)}

## run: serve on http://$(HOST):$(PORT) with gunicorn; beside it `ops tick` every minute, the
## operators' feed poller (`feeds poll`, which waits for each feed's ttl itself) and the sensors'
## MQTT listener (MQTT_BROKER, default mqtt://127.0.0.1:1883)
run: python db demo
	@echo "Serving on http://$(HOST):$(PORT)  (try /api/v1/stations/nearest?lat=27.83&lng=113.15, staff: /staff/)"
	@export YIZHAN_SECRET_KEY="$(DEV_SECRET)"; \
	  ( while sleep 60; do $(FLASK) ops tick >/dev/null || echo "ops tick failed" >&2; done ) & ticker=$$!; \
	  $(FLASK) feeds poll & poller=$$!; \
	  $(FLASK) sensors listen --broker "$${MQTT_BROKER:-mqtt://127.0.0.1:1883}" & listener=$$!; \
	  trap 'kill $$ticker $$poller $$listener 2>/dev/null' EXIT INT TERM; \
	  $(VENV)/bin/gunicorn --workers $(WORKERS) --bind $(HOST):$(PORT) \
	    --logger-class app.logs.AccessLogger wsgi:app

## test: the whole suite, on both stores (SQLite and PostGIS), and the page in Chromium
test: python browser pgbouncer nginx
	@url=$$(PY=$(PY) scripts/ensure-postgis.sh) && \
	  TEST_DATABASE_URL="$$url" $(VENV)/bin/pytest $(PYTEST_ARGS)

## bench: nearest-station and import benchmark (see README, Performance)
bench: python
	@url=$$(PY=$(PY) scripts/ensure-postgis.sh) && \
	  BENCH_DATABASE_URL="$$url" $(PY) bench/nearest.py $(BENCH_ARGS)

## bench-network: isochrone, service-area and pgRouting benchmark
bench-network: python
	@url=$$(PY=$(PY) scripts/ensure-postgis.sh) && \
	  BENCH_DATABASE_URL="$$url" $(PY) bench/isochrone.py $(BENCH_ARGS)

## bench-throughput: HTTP req/s of nearest (both stores) beside a bare Flask view, gunicorn + wrk
bench-throughput: python tools
	@url=$$(PY=$(PY) scripts/ensure-postgis.sh) && \
	  BENCH_DATABASE_URL="$$url" $(PY) bench/throughput.py $(BENCH_ARGS)

## bench-live: 5,000 cabinets pushing every 30 s for 60 s while nearest is loaded (gunicorn + wrk)
bench-live: python tools
	@url=$$(PY=$(PY) scripts/ensure-postgis.sh) && \
	  BENCH_DATABASE_URL="$$url" $(PY) bench/live_feed.py $(BENCH_ARGS)

## bench-lighthouse: Lighthouse (mobile) scores for the page, served by gunicorn with the demo data
bench-lighthouse: python browser demo
	@bench/lighthouse.sh

## clean: the virtualenv and test output (the station database in instance/ is kept)
clean:
	rm -rf $(VENV) .pytest_cache test-artifacts bench/out

## bench-sensors: 2,000 sensor devices through Mosquitto (and a 200-device baseline): loss and latency
bench-sensors: python
	@url=$$(PY=$(PY) scripts/ensure-postgis.sh) && \
	  BENCH_DATABASE_URL="$$(echo $$url | sed 's#/[^/]*$$#/yizhan_bench_sensors#')" $(PY) bench/sensors.py $(BENCH_ARGS)

## bench-search: search by name on 1M stations + the synthetic city's streets, both stores (store, HTTP, naive LIKE)
bench-search: python
	@url=$$(PY=$(PY) scripts/ensure-postgis.sh) && \
	  BENCH_DATABASE_URL="$$url" $(PY) bench/search.py $(BENCH_ARGS)

## bench-load: the city mix (80 % nearest, 10 % map area, 5 % service circle, 3 % reports, 2 % ratings)
## under locust against gunicorn -> PgBouncer -> the primary and its standby: the highest rate with
## p95 < 100 ms and no errors, with the replica and without (at most 8 minutes; see README, Capacity)
bench-load: python pgbouncer
	@test -x $(VENV)/bin/locust || $(VENV)/bin/pip install -q --disable-pip-version-check -r bench/requirements-bench.txt
	@url=$$(PY=$(PY) scripts/ensure-postgis.sh) && \
	  BENCH_DATABASE_URL="$$url" $(PY) bench/load.py $(BENCH_ARGS)
