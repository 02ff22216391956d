"""The MQTT listener against real Mosquitto brokers, on both stores.

The shared broker at 127.0.0.1:1883 carries the readings (device ids unique to each run, so other
runs' messages never count here); a private ``mosquitto -p PORT`` started by the test is stopped
and started again to show the listener reconnecting on its own. The listener commits, so each
store is a database of its own (SQLite in a temporary file; PostGIS in
"<TEST_DATABASE_URL's database>_sensors", emptied each run), never the rolled-back test store.
Waiting for the listener is bounded by a deadline that only turns a hang into a failure.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as mqtt
import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from app import create_app
from app.ops.sensor_listener import Listener, broker_address, forget_session
from app.ops.sensors import CLEANING, OFFLINE, Sensors, topic_for
from tests.helpers import own_postgis_database, station

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = "mqtt://127.0.0.1:1883"
DEADLINE_S = 30
RUN = uuid.uuid4().hex[:8]




@pytest.fixture(scope="module", params=("sqlite", "postgis"))
def committed(request, apps):
    """An app on a database of its own, with organisation east, its manager and cleaner, and two toilets."""
    tmp = tempfile.mkdtemp(prefix="yizhan-sensors-")
    url = f"sqlite:///{tmp}/sensors.sqlite3" if request.param == "sqlite" else own_postgis_database(apps, "sensors")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": secrets.token_hex(32), "REDIS_URL": "",
                      "YIZHAN_UPLOAD_DIR": os.path.join(tmp, "uploads")})
    with app.app_context():
        upgrade()
    store, ops = app.extensions["yizhan_store"], app.extensions["yizhan_ops"]
    store.upsert([station("t1", 27.83, 113.15, hours="24/7", source="mqtt"),
                  station("t2", 27.84, 113.16, hours="24/7", source="mqtt")])
    ops.accounts.create_organisation("east", "荷塘区环卫所")
    ops.accounts.create_user("boss@east.example", "correct horse battery", "org_manager", "east")
    ops.accounts.create_user("cleaner@east.example", "correct horse battery", "worker", "east")
    ops.accounts.assign_stations("east", "mqtt", ["t1", "t2"])
    with store.reading() as conn:
        ids = dict(conn.execute(text("SELECT source_id, id FROM station WHERE source = 'mqtt'")).all())
    yield app, ops, ids, url
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()


class Running:
    """A listener in a thread, stopped afterwards. Without a ``client_id`` it gets one of its own and
    its broker session is forgotten on the way out; with one, the session is kept for the next.
    ``acknowledge=False`` commits but never acknowledges (a crash between the two)."""

    def __init__(self, ops, broker=SHARED, client_id=None, acknowledge=True):
        self.client_id = client_id or f"yizhan-test-{uuid.uuid4().hex[:12]}"
        self.forget = client_id is None
        self.broker = broker
        self.listener = Listener(ops, broker, self.client_id)
        if not acknowledge:
            self.listener._client.ack = lambda mid, qos: None
        self.thread = threading.Thread(target=self.listener.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        assert self.listener.connected.wait(DEADLINE_S), "the listener never connected"
        return self.listener

    def __exit__(self, *exc):
        self.listener.stop()
        self.thread.join(DEADLINE_S)
        assert not self.thread.is_alive()
        if self.forget:
            forget_session(self.broker, self.client_id)


def _publish(messages, port=1883):
    """Publish (topic, payload) pairs with QoS 1 and wait until the broker has acknowledged each."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:10]}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(DEADLINE_S)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def _reading(ts: datetime, people: int, **gases) -> bytes:
    return json.dumps({"ts": ts.isoformat(), "people_in": people, **gases}).encode()


def _wait(condition, what: str, deadline_s: float = DEADLINE_S):
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _scalar(ops, sql, **params):
    with ops.stations.reading() as conn:
        return conn.execute(text(sql), params).scalar()


def _readings(ops, device):
    return _scalar(ops, "SELECT count(*) FROM sensor_reading WHERE device_id = :d", d=device)


def _cleaning_orders(ops, station_id):
    with ops.stations.reading() as conn:
        return conn.execute(text("SELECT id, state FROM work_order WHERE station_id = :s AND category = :c"
                                 " ORDER BY id"), {"s": station_id, "c": CLEANING}).all()


def test_threshold_over_mqtt_opens_one_work_order_and_the_check_in_resets_the_count(committed):
    app, ops, ids, _ = committed
    sensors, device, t1 = Sensors(ops), f"pc-{RUN}-t1", ids["t1"]
    sensors.register(device, t1, threshold=12)
    start = datetime.now(timezone.utc) - timedelta(minutes=2)
    messages = [(topic_for(device), _reading(start + timedelta(seconds=10 * i), 3)) for i in range(8)]  # 24 people
    with Running(ops) as listener:
        _publish(messages + messages[:3])  # the first three again: a redelivery
        _wait(lambda: listener.stats.applied + listener.stats.duplicates >= 11, "11 messages")
        assert _readings(ops, device) == 8
        assert (listener.stats.applied, listener.stats.duplicates) >= (8, 3)
        orders = _cleaning_orders(ops, t1)
        assert [state for _, state in orders] == ["new"]  # one, however far past the threshold
        assert _scalar(ops, "SELECT visitors_since_cleaning FROM station_cleaning WHERE station_id = :s", s=t1) == 24
        cleaner = ops.accounts.user_by_email("cleaner@east.example")
        assert sensors.cleaned(cleaner, t1) == orders[0].id
        assert [state for _, state in _cleaning_orders(ops, t1)] == ["closed"]
        assert _scalar(ops, "SELECT visitors_since_cleaning FROM station_cleaning WHERE station_id = :s", s=t1) == 0
        later = datetime.now(timezone.utc)
        _publish([(topic_for(device), _reading(later, 5))])
        _wait(lambda: _readings(ops, device) == 9, "the reading after the cleaning")
        assert _scalar(ops, "SELECT visitors_since_cleaning FROM station_cleaning WHERE station_id = :s", s=t1) == 5
        assert [state for _, state in _cleaning_orders(ops, t1)] == ["closed"]


def test_gas_over_mqtt_and_bad_messages_are_counted_never_fatal(committed):
    app, ops, ids, _ = committed
    sensors, device, t2 = Sensors(ops), f"gas-{RUN}-t2", ids["t2"]
    sensors.register(device, t2, threshold=10_000)
    now = datetime.now(timezone.utc)
    topic = topic_for(device)
    bad = [
        (topic, b"{not json"),
        (topic, b'{"ts": "%s", "people_in": 1, "nh3": NaN}' % now.isoformat().encode()),
        (topic, _reading(now, -3)),
        (topic, _reading(now + timedelta(days=400), 1)),  # far in the future
        (topic_for(f"nobody-{RUN}"), _reading(now, 1)),  # an unknown device
        ("yizhan/sensors/x/y/reading", _reading(now, 1)),  # not matched by the subscription at all
    ]
    with Running(ops) as listener:
        _publish(bad + [(topic, _reading(now - timedelta(seconds=5), 0, nh3=2.5, h2s=0.0))])  # NH3 > 1.0 (class 2)
        _wait(lambda: _readings(ops, device) == 1, "the good reading after the bad ones")
        _wait(lambda: sum(listener.stats.rejected.values()) >= 5, "five rejections")
        assert listener.stats.rejected["bad_payload"] >= 3 and listener.stats.rejected["bad_time"] >= 1
        assert listener.stats.rejected["unknown_device"] >= 1
        assert [state for _, state in _cleaning_orders(ops, t2)] == ["new"]
        assert listener.connected.is_set()


def test_a_silent_device_goes_offline_in_ops_tick_and_back_when_it_speaks(committed):
    app, ops, ids, _ = committed
    sensors, device, t2 = Sensors(ops), f"quiet-{RUN}", ids["t2"]
    sensors.register(device, t2)
    sensors.set_rule(t2, offline_after_s=60)
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    assert device in ops.tick(later, deliver=False).sensors_offline
    with ops.stations.reading() as conn:
        open_offline = conn.execute(text("SELECT count(*) FROM work_order WHERE station_id = :s AND category = :c"
                                         " AND state = 'new'"), {"s": t2, "c": OFFLINE}).scalar()
    assert open_offline == 1
    others = _scalar(ops, "SELECT count(*) FROM sensor_device WHERE station_id = :s AND device_id <> :d", s=t2,
                     d=device)
    with Running(ops) as listener:
        # Every device of the station must speak for the station to be back.
        devices = [device] + [r for r in _devices(ops, t2) if r != device]
        assert len(devices) == others + 1
        _publish([(topic_for(d), _reading(datetime.now(timezone.utc), 0)) for d in devices])
        _wait(lambda: _scalar(ops, "SELECT count(*) FROM work_order WHERE station_id = :s AND category = :c"
                                   " AND state = 'closed'", s=t2, c=OFFLINE) == 1, "the offline work order closed")
        assert _scalar(ops, "SELECT count(*) FROM sensor_device WHERE station_id = :s AND offline_since IS NOT NULL",
                       s=t2) == 0
        assert listener.stats.applied >= 1


def _devices(ops, station_id):
    with ops.stations.reading() as conn:
        return list(conn.execute(text("SELECT device_id FROM sensor_device WHERE station_id = :s"),
                                 {"s": station_id}).scalars())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mosquitto(port, limits: str | None = None, anonymous: bool = True):
    """A private broker on ``port``; with ``limits``, a configuration file of ours appended to its own."""
    command = [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-p", str(port)]
    if limits is not None:
        config = os.path.join(tempfile.mkdtemp(prefix="yizhan-mosquitto-"), "mosquitto.conf")
        with open(config, "w") as out, open(limits) as ours:
            out.write(f"listener {port} 127.0.0.1\nallow_anonymous {'true' if anonymous else 'false'}\n{ours.read()}")
        command = command[:1] + ["-c", config]
    broker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return broker
        except OSError:
            assert time.monotonic() < deadline and broker.poll() is None, "mosquitto did not start"
            time.sleep(0.05)


def test_the_listener_reconnects_when_the_broker_restarts(committed):
    app, ops, ids, _ = committed
    sensors, device = Sensors(ops), f"pc-{RUN}-restart"
    sensors.register(device, ids["t1"], threshold=10_000)
    port = _free_port()
    broker = _mosquitto(port)
    try:
        with Running(ops, f"mqtt://127.0.0.1:{port}") as listener:
            _publish([(topic_for(device), _reading(datetime.now(timezone.utc), 1))], port)
            _wait(lambda: _readings(ops, device) == 1, "the first reading")
            broker.send_signal(signal.SIGTERM)
            broker.wait(DEADLINE_S)
            _wait(lambda: not listener.connected.is_set(), "the listener to notice")
            broker = _mosquitto(port)
            _wait(listener.connected.is_set, "the listener to reconnect")
            _publish([(topic_for(device), _reading(datetime.now(timezone.utc), 1))], port)
            _wait(lambda: _readings(ops, device) == 2, "a reading after the restart")
            assert listener.stats.connects >= 2
    finally:
        broker.terminate()
        broker.wait(DEADLINE_S)


def test_sensors_listen_stops_gracefully_on_sigterm(committed):
    app, ops, ids, url = committed
    port = _free_port()
    broker = _mosquitto(port)
    env = {**os.environ, "DATABASE_URL": url, "YIZHAN_SECRET_KEY": secrets.token_hex(32), "REDIS_URL": ""}
    try:
        listen = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "sensors", "listen",
                                   "--broker", f"mqtt://127.0.0.1:{port}", "--client-id", f"sigterm-{RUN}"],
                                  cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        deadline = time.monotonic() + DEADLINE_S
        while not any("listening on" in line for line in lines):
            assert time.monotonic() < deadline and listen.poll() is None, "".join(lines)
            lines.append(listen.stderr.readline())
        listen.send_signal(signal.SIGTERM)
        _, rest = listen.communicate(timeout=DEADLINE_S)
        assert listen.returncode == 0, rest
        assert "stopped: applied 0" in rest
    finally:
        broker.terminate()
        broker.wait(DEADLINE_S)


BURST_DEVICES, BURST_EACH = 50, 60  # 3,000 readings, each device's 10 s apart (never a flood)


def test_a_burst_published_while_the_listener_is_away_is_applied_exactly_once(committed):
    """3,000 readings published while the listener is stopped wait in its persistent session (the
    broker configured with deploy/mosquitto-yizhan.conf: Mosquitto's default keeps only 1,000) and
    are all applied once it is back, the station's counters summing each reading once. Then a
    listener that commits but never acknowledges (a crash between the two) gets them all again
    from the broker, and each is a duplicate: nothing is counted twice."""
    app, ops, ids, _ = committed
    sensors, t2 = Sensors(ops), ids["t2"]
    devices = [f"burst-{RUN}-{k}" for k in range(BURST_DEVICES)]
    for device in devices:
        sensors.register(device, t2, threshold=100_000)
    before = _scalar(ops, "SELECT visitors_since_cleaning FROM station_cleaning WHERE station_id = :s", s=t2)
    start = datetime.now(timezone.utc) - timedelta(seconds=10 * BURST_EACH + 60)
    messages = [(topic_for(device), _reading(start + timedelta(seconds=10 * i), (i + k) % 4))
                for i in range(BURST_EACH) for k, device in enumerate(devices)]
    people = sum((i + k) % 4 for i in range(BURST_EACH) for k in range(BURST_DEVICES))
    stored = lambda: _scalar(ops, "SELECT count(*) FROM sensor_reading WHERE device_id LIKE :p",  # noqa: E731
                             p=f"burst-{RUN}-%")
    port = _free_port()
    broker = _mosquitto(port, os.path.join(PROJECT, "deploy", "mosquitto-yizhan.conf"))
    url, client_id = f"mqtt://127.0.0.1:{port}", f"burst-{RUN}"
    try:
        with Running(ops, url, client_id) as listener:  # the session exists from here on
            pass
        _publish(messages, port)
        assert stored() == 0
        with Running(ops, url, client_id) as listener:
            _wait(lambda: listener.stats.applied >= len(messages), "the backlog applied", deadline_s=120)
        assert stored() == len(messages) and listener.stats.applied == len(messages)
        assert listener.stats.batches < len(messages) / 10  # applied in batches, not one by one
        counted = _scalar(ops, "SELECT visitors_since_cleaning FROM station_cleaning WHERE station_id = :s", s=t2)
        assert counted - before == people

        again = [(topic_for(device), _reading(datetime.now(timezone.utc), 1)) for device in devices]
        with Running(ops, url, client_id, acknowledge=False) as listener:
            _publish(again, port)
            _wait(lambda: listener.stats.applied >= len(again), "the new readings applied")
        with Running(ops, url, client_id) as listener:
            _wait(lambda: listener.stats.duplicates >= len(again), "the unacknowledged readings again")
            assert listener.stats.applied == 0
        assert stored() == len(messages) + len(again)
        counted = _scalar(ops, "SELECT visitors_since_cleaning FROM station_cleaning WHERE station_id = :s", s=t2)
        assert counted - before == people + len(again)
    finally:
        forget_session(url, client_id)
        broker.terminate()
        broker.wait(DEADLINE_S)


# -- a broker that wants a login ------------------------------------------------------------------


def test_broker_urls_name_tls_and_the_user_and_never_hold_the_password():
    plain = broker_address("mqtt://broker.example")
    assert (plain.host, plain.port, plain.tls, plain.username, plain.password) == ("broker.example", 1883, False,
                                                                                 None, None)
    secure = broker_address("mqtts://yizhan%40city@broker.example", {"YIZHAN_MQTT_PASSWORD": "pw",
                                                                     "YIZHAN_MQTT_CA": "/etc/ca.pem"})
    assert (secure.port, secure.tls, secure.username, secure.password, secure.ca_file) == (
        8883, True, "yizhan@city", "pw", "/etc/ca.pem")
    assert "pw" not in repr(secure) and "pw" not in str(secure)
    with pytest.raises(ValueError, match="YIZHAN_MQTT_PASSWORD"):
        broker_address("mqtt://user:secret@broker.example")
    with pytest.raises(ValueError):
        broker_address("http://broker.example")


def test_the_listener_logs_in_to_a_broker_that_refuses_anonymous_clients(committed, monkeypatch):
    """Where devices must not publish as one another, the broker refuses anonymous clients: the
    listener then logs in (user in --broker, password in YIZHAN_MQTT_PASSWORD); a wrong password
    does not get it in."""
    app, ops, ids, _ = committed
    sensors, device = Sensors(ops), f"pc-{RUN}-login"
    sensors.register(device, ids["t1"], threshold=10_000)
    folder = tempfile.mkdtemp(prefix="yizhan-mosquitto-auth-")
    passwords = os.path.join(folder, "passwords")
    subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", "-c", passwords,
                    "yizhan", "listener password"], check=True, capture_output=True)
    subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", passwords,
                    "device", "device password"], check=True, capture_output=True)
    # Mosquitto started as root reads its files as the user "mosquitto": let that user in.
    os.chmod(folder, 0o755)
    os.chmod(passwords, 0o644)
    port = _free_port()
    config = os.path.join(folder, "login.conf")
    with open(config, "w") as out:
        out.write(f"password_file {passwords}\n")
    broker = _mosquitto(port, config, anonymous=False)
    try:
        monkeypatch.setenv("YIZHAN_MQTT_PASSWORD", "not the password")
        refused = Listener(ops, f"mqtt://yizhan@127.0.0.1:{port}", f"login-{RUN}-refused")
        thread = threading.Thread(target=refused.run, daemon=True)
        thread.start()
        try:
            assert not refused.connected.wait(3)  # refused: never subscribed
        finally:
            refused.stop()
            thread.join(DEADLINE_S)
        monkeypatch.setenv("YIZHAN_MQTT_PASSWORD", "listener password")
        with Running(ops, f"mqtt://yizhan@127.0.0.1:{port}", f"login-{RUN}") as listener:
            publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:10]}")
            publisher.username_pw_set("device", "device password")
            publisher.connect("127.0.0.1", port)
            publisher.loop_start()
            try:
                publisher.publish(topic_for(device), _reading(datetime.now(timezone.utc), 2), qos=1).wait_for_publish(
                    DEADLINE_S)
            finally:
                publisher.disconnect()
                publisher.loop_stop()
            _wait(lambda: _readings(ops, device) == 1, "the reading through the logged-in listener")
            assert listener.stats.applied == 1
        forget_session(f"mqtt://yizhan@127.0.0.1:{port}", f"login-{RUN}")
    finally:
        broker.terminate()
        broker.wait(DEADLINE_S)
