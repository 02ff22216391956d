"""Sensor readings through Mosquitto into the store: no loss, and publish -> work order committed.

A run (PostGIS, a database of its own, emptied first):
1. the baseline: 200 devices, then
2. the load: 2,000 devices (the issue's figure),
each at one reading per 10 s for DURATION seconds, published with QoS 1 to the broker at
127.0.0.1:1883 by a few publisher connections, applied by the real listener (app.ops.sensor_listener,
`flask --app wsgi sensors listen` in a process of its own) into the real store. Each station's threshold is small, so
cleaning work orders open all the time; a watcher closes each one it sees (the cleaner's
check-in, ``Sensors.cleaned``), so the next can open.

Printed: readings published vs stored (no loss), per reading publish -> applied (the reading's
``received_at``, when its batch was applied, minus its ``ts``, the publish time), and per cleaning
work order the publish of the reading that opened it (the earliest of the station's readings in
that batch) -> the work order seen committed by a watcher polling every 20 ms (so those figures
include up to 20 ms of polling). Baseline and load come from the same run.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/yizhan_bench_sensors python bench/sensors.py
"""
from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)

from app import create_app  # noqa: E402
from app.config import normalise_database_url  # noqa: E402
from app.dbtime import from_db  # noqa: E402
from app.ops.sensor_listener import forget_session  # noqa: E402
from app.ops.sensors import Sensors, topic_for  # noqa: E402
from app.stations.backends import drop_all_tables  # noqa: E402
from app.stations.model import StationInput  # noqa: E402
from app.stations.vocabulary import amenity_mask  # noqa: E402

DURATION = float(os.environ.get("BENCH_SECONDS", "60"))
BASELINE_DURATION = float(os.environ.get("BENCH_BASELINE_SECONDS", "30"))
PERIOD = 10.0  # seconds between a device's readings
DEVICES_PER_STATION = 2
THRESHOLD = 6  # people; each reading brings 0-4, so a station crosses it every 10-20 s
PUBLISHERS = 8
POLL_S = 0.02


def _database() -> str:
    url = make_url(normalise_database_url(os.environ.get("BENCH_DATABASE_URL",
                                  "postgresql://postgres@127.0.0.1:5432/yizhan_bench_sensors")))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).first() is None:
            conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
    admin.dispose()
    engine = create_engine(url)
    drop_all_tables(engine)
    engine.dispose()
    return url.render_as_string(hide_password=False)


def _percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return (f"p50 {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms (n={len(ordered):,})")


def _stations(store, ops, count: int, tag: str) -> list[int]:
    rows = [StationInput(source=f"bench-{tag}", source_id=str(i), name=f"压测公厕 {i}", kind="toilet",
                         lat=27.80 + (i % 100) * 0.001, lng=113.10 + (i // 100) * 0.001,
                         amenities_yes=amenity_mask({"toilet"}), amenities_no=0, opening_hours="24/7",
                         status="active", timezone="Asia/Shanghai") for i in range(count)]
    store.upsert(rows)
    # Sensors sit on stations an organisation looks after: their work orders are routed to it.
    ops.accounts.assign_stations("bench", f"bench-{tag}", [str(i) for i in range(count)])
    with store.reading() as conn:
        return [r.id for r in conn.execute(text("SELECT id FROM station WHERE source = :s ORDER BY id"),
                                           {"s": f"bench-{tag}"})]


def _watch(ops, sensors, station_ids: set[int], seen: dict, stop: threading.Event):
    """Poll for new cleaning work orders; note when each is first seen committed, then close it."""
    while not stop.is_set():
        with ops.stations.reading() as conn:
            rows = conn.execute(text("SELECT id, station_id FROM work_order WHERE category = 'cleaning_required'"
                                     " AND state = 'new'")).all()
        now = time.time()
        for row in rows:
            if row.station_id in station_ids and row.id not in seen:
                seen[row.id] = now
        admin = ops.accounts.user_by_email("bench@yizhan.example")
        for row in rows:
            if row.station_id in station_ids:
                sensors.cleaned(admin, row.station_id)
        stop.wait(POLL_S)


def _stored(store, tag: str) -> int:
    with store.reading() as conn:
        return conn.execute(text("SELECT count(*) FROM sensor_reading WHERE device_id LIKE :p"),
                            {"p": f"bench-{tag}-%"}).scalar()


def run(app, devices: int, tag: str, duration: float):
    store, ops = app.extensions["yizhan_store"], app.extensions["yizhan_ops"]
    sensors = Sensors(ops)
    stations = _stations(store, ops, devices // DEVICES_PER_STATION, tag)
    names = [f"bench-{tag}-{uuid.uuid4().hex[:6]}-{i}" for i in range(devices)]
    for i, name in enumerate(names):
        sensors.register(name, stations[i // DEVICES_PER_STATION], threshold=THRESHOLD)
    client_id = f"yizhan-bench-{uuid.uuid4().hex[:8]}"
    # The real command in a process of its own (as `make run` starts it), so the publishers here
    # do not share its interpreter.
    env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "YIZHAN_SECRET_KEY": "bench" * 10}
    listener = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "sensors", "listen",
                                 "--client-id", client_id], cwd=PROJECT, env=env, stderr=subprocess.PIPE, text=True)
    while "listening on" not in (line := listener.stderr.readline()):
        assert line, "the listener did not start"
    seen: dict[int, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(ops, sensors, set(stations), seen, stop), daemon=True)
    watcher.start()

    publishers = []
    for k in range(PUBLISHERS):
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", 1883)
        client.loop_start()
        publishers.append(client)
    published = 0
    infos = []
    start = time.time()
    rounds = int(duration / PERIOD)
    for r in range(rounds):
        round_start = start + r * PERIOD
        for i, name in enumerate(names):  # spread each device's reading evenly over the period
            due = round_start + PERIOD * i / devices
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            ts = datetime.now(timezone.utc)
            payload = json.dumps({"ts": ts.isoformat(), "people_in": (i + r) % 5}).encode()
            infos.append(publishers[i % PUBLISHERS].publish(topic_for(name), payload, qos=1))
            published += 1
    for info in infos:
        info.wait_for_publish(60)
    deadline = time.time() + 60
    while _stored(store, tag) < published and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    stop.set()
    watcher.join()
    listener.send_signal(signal.SIGTERM)
    summary = [line for line in listener.communicate(timeout=60)[1].splitlines() if "stopped:" in line]
    for client in publishers:
        client.disconnect()
        client.loop_stop()
    forget_session("mqtt://127.0.0.1:1883", client_id)

    with store.reading() as conn:
        stored = conn.execute(text("SELECT count(*) FROM sensor_reading WHERE device_id LIKE :p"),
                              {"p": f"bench-{tag}-%"}).scalar()
        lags = [(from_db(r.received_at) - from_db(r.ts)).total_seconds() for r in conn.execute(text(
            "SELECT ts, received_at FROM sensor_reading WHERE device_id LIKE :p"), {"p": f"bench-{tag}-%"})]
        # The readings applied in the batch that opened a work order share its time; which of the
        # station's readings in that batch opened it is not stored, so each work order is measured
        # from the earliest publish among them (never shorter than the truth).
        opened = conn.execute(text(
            "SELECT w.id, min(r.ts) AS ts FROM work_order w JOIN sensor_device d ON d.station_id = w.station_id"
            " JOIN sensor_reading r ON r.device_id = d.device_id AND r.received_at = w.created_at"
            " WHERE w.category = 'cleaning_required' AND d.device_id LIKE :p GROUP BY w.id"),
            {"p": f"bench-{tag}-%"}).all()
    e2e = [seen[row.id] - from_db(row.ts).timestamp() for row in opened if row.id in seen]
    print(f"\n{devices:,} devices, one reading per {PERIOD:g} s for {duration:g} s "
          f"({devices / PERIOD:.0f} readings/s):")
    print(f"  published {published:,}, stored {stored:,}, lost {published - stored:,}; listener "
          f"{summary[-1].split('stopped: ')[1] if summary else '(no summary)'}")
    print(f"  publish -> reading applied: {_percentiles(lags)}")
    print(f"  publish -> cleaning work order committed (seen by a 20 ms poll): {_percentiles(e2e)}")
    return published - stored, e2e, lags


def main():
    url = _database()
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench" * 10, "REDIS_URL": ""})
    with app.app_context():
        upgrade()
    ops = app.extensions["yizhan_ops"]
    ops.accounts.create_user("bench@yizhan.example", "bench password 1", "admin")
    ops.accounts.create_organisation("bench", "压测环卫所")
    print(f"store: PostGIS ({make_url(url).database}); broker: Mosquitto 127.0.0.1:1883")
    base_lost, base_e2e, _ = run(app, 200, "base", BASELINE_DURATION)
    lost, e2e, _ = run(app, 2000, "load", DURATION)
    if base_e2e and e2e:
        ratio = sorted(e2e)[int(0.95 * (len(e2e) - 1))] / max(sorted(base_e2e)[int(0.95 * (len(base_e2e) - 1))], 1e-9)
        print(f"\np95 publish -> work order, 2,000 devices vs 200: {ratio:.2f}x")
    if lost or base_lost:
        sys.exit("readings were lost")


if __name__ == "__main__":
    main()
