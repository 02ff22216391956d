"""/metrics: who may scrape it (loopback or an allowed network, or the bearer token; nobody through an
uncounted proxy), the request histogram by endpoint (never the raw path), the scrape-time figures
on both stores, the sensor listeners' heartbeats and the replica hook; and a real gunicorn with 2
workers in multi-process mode, whose counts are summed — with its logs free of secrets."""
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from flask_migrate import upgrade
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

import app.metrics as metrics
from app import PROJECT_ROOT, create_app
from app.dbtime import to_db, utcnow
from app.metrics import allowed_networks, listener_heartbeat, token_digest
from app.ops.sensors import Sensors
from tests.helpers import own_postgis_database
from tests.staff_world import build

TOKEN = "scrape-" + uuid.uuid4().hex


def samples(body: str) -> dict:
    """{(name, frozenset(labels)): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(body: str, name: str, **labels):
    return samples(body).get((name, frozenset(labels.items())))


@pytest.fixture
def scrape(client, monkeypatch):
    monkeypatch.setattr(metrics, "SCRAPE_CACHE_S", 0)  # each scrape asks the database afresh

    def get(**environ):
        answer = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1", **environ})
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == "no-store"
        return answer.get_data(as_text=True)

    return get


# -- who may scrape ----------------------------------------------------------------------------


def test_loopback_may_scrape_and_the_internet_may_not(client):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    for outside in ("203.0.113.9", "10.0.0.5", "2001:db8::1"):
        refused = client.get("/metrics", environ_base={"REMOTE_ADDR": outside})
        assert refused.status_code == 404 and "yizhan_" not in refused.get_data(as_text=True)


def test_a_request_through_an_uncounted_proxy_is_refused_even_from_loopback(client):
    for header in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}):
        assert client.get("/metrics", headers=header, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 404


def test_the_bearer_token_lets_in_from_anywhere_and_a_wrong_one_nowhere(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "YIZHAN_METRICS_TOKEN_SHA256", token_digest(TOKEN))
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    ok = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, environ_base=outside)
    assert ok.status_code == 200 and "yizhan_http_request_duration_seconds" in ok.get_data(as_text=True)
    for wrong in (f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN, "Bearer " + TOKEN[:-1]):
        for where in (outside, {"REMOTE_ADDR": "127.0.0.1"}):
            assert client.get("/metrics", headers={"Authorization": wrong}, environ_base=where).status_code == 404


def test_without_a_configured_token_no_bearer_is_accepted(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "YIZHAN_METRICS_TOKEN_SHA256", "")
    assert client.get("/metrics", headers={"Authorization": "Bearer "},
                      environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 404


def test_an_allowed_network(app, client, monkeypatch):
    monkeypatch.setitem(app.extensions, "yizhan_metrics_allow", allowed_networks("10.20.0.0/16, 192.0.2.7"))
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.20.3.4"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.21.0.1"}).status_code == 404
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 404  # not listed
    assert allowed_networks("") == ()
    with pytest.raises(ValueError, match="YIZHAN_METRICS_ALLOW"):
        allowed_networks("10.0.0.0/33")


def test_the_token_is_kept_only_as_its_digest(monkeypatch, tmp_path):
    monkeypatch.setenv("YIZHAN_METRICS_TOKEN", TOKEN)
    made = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite3", "TESTING": True})
    assert TOKEN not in repr(dict(made.config))
    assert made.config["YIZHAN_METRICS_TOKEN_SHA256"] == token_digest(TOKEN)


# -- what is measured --------------------------------------------------------------------------


def test_requests_are_counted_by_endpoint_method_and_status_never_by_path(client, scrape):
    before = value(scrape(), "yizhan_http_request_duration_seconds_count", endpoint="web.station_page",
                   method="GET", status="404") or 0
    for n in range(5):
        client.get(f"/s/{987654321 + n}")  # five paths, one endpoint
    client.get(f"/no/such/{uuid.uuid4().hex}")
    client.open("/healthz", method="BREW")
    body = scrape()
    assert value(body, "yizhan_http_request_duration_seconds_count", endpoint="web.station_page", method="GET",
                 status="404") == before + 5
    assert value(body, "yizhan_http_request_duration_seconds_count", endpoint="unmatched", method="GET",
                 status="404") >= 1
    assert value(body, "yizhan_http_request_duration_seconds_count", endpoint="unmatched", method="other",
                 status="405") >= 1  # a method no rule takes matches no endpoint
    assert "987654321" not in body and "/no/such" not in body and "BREW" not in body


def test_work_orders_breaches_feeds_and_sensors(app, store, ops, scrape):
    now = utcnow()
    world = build(store, ops, created=now - timedelta(days=30))  # three open work orders, long overdue
    ops.tick(now, deliver=False)  # marks their SLA breaches
    Sensors(ops).register("meter-1", world.station["a1"])
    with store.transaction() as conn:
        dialect = conn.dialect.name
        org = conn.execute(text("SELECT id FROM organisation WHERE code = 'east'")).scalar_one()
        conn.execute(text("INSERT INTO operator_feed (organisation_id, url, next_poll_at, failures, last_polled_at)"
                          " VALUES (:org, 'https://feed.example/gbfs.json', :at, 2, :at)"),
                     {"org": org, "at": to_db(now - timedelta(seconds=90), dialect)})
    body = scrape()
    assert value(body, "yizhan_metrics_database_up") == 1
    assert value(body, "yizhan_work_orders_open") == 3
    assert value(body, "yizhan_work_orders_overdue") == 3
    # Each was assigned a minute after it came in (a response in time), none resolved (a breach each).
    assert value(body, "yizhan_sla_breaches_total", limit="response") == 0
    assert value(body, "yizhan_sla_breaches_total", limit="resolution") == 3
    assert 90 <= value(body, "yizhan_feed_last_poll_age_seconds", operator="east") < 3600
    assert value(body, "yizhan_feed_failures", operator="east") == 2
    assert value(body, "yizhan_sensor_devices") == 1 and value(body, "yizhan_sensor_devices_offline") == 0
    assert value(body, "yizhan_live_status_fresh_stations") == 0


def test_pool_use_follows_checkouts(app, scrape):
    pool = "primary"
    size = value(scrape(), "yizhan_db_pool_size", pool=pool)
    assert size == 5 if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") else size >= 1
    gauge = app.extensions["yizhan_metrics"].pool_checked_out.labels(pool)
    before = gauge._value.get()
    with app.app_context():
        from app.extensions import db

        with db.engine.connect():
            assert gauge._value.get() == before + 1
    assert gauge._value.get() == before


def test_sensor_listener_heartbeats(app, scrape):
    listener = f"test-{uuid.uuid4().hex[:8]}"
    beat = listener_heartbeat(app.config["REDIS_URL"], listener)
    beat({"connected": True, "stopped": False, "at": time.time(), "applied": 7, "duplicates": 1, "rejected": 2,
          "store_errors": 0})
    body = scrape()
    assert value(body, "yizhan_sensor_listener_up", listener=listener) == 1
    assert value(body, "yizhan_sensor_listener_connected", listener=listener) == 1
    assert value(body, "yizhan_sensor_listener_applied_total", listener=listener) == 7
    beat({"connected": True, "stopped": False, "at": time.time() - metrics.LISTENER_TTL_S - 5, "applied": 7})
    assert value(scrape(), "yizhan_sensor_listener_up", listener=listener) == 0  # silent: down
    beat({"connected": False, "stopped": True, "at": time.time(), "applied": 9})
    body = scrape()
    assert value(body, "yizhan_sensor_listener_up", listener=listener) == 0
    assert value(body, "yizhan_sensor_listener_connected", listener=listener) == 0
    beat({"connected": False, "stopped": True, "at": time.time() - metrics.LISTENER_FORGET_S - 5})
    assert value(scrape(), "yizhan_sensor_listener_up", listener=listener) is None  # forgotten


def test_the_listener_beats_while_it_runs(store, ops):
    """A listener against a broker address nobody answers still says it is up and not connected."""
    from app.ops.sensor_listener import Listener

    beats = []
    listener = Listener(ops, "mqtt://127.0.0.1:1", f"beat-{uuid.uuid4().hex[:8]}", heartbeat=beats.append)
    runner = __import__("threading").Thread(target=listener.run)
    runner.start()
    deadline = time.monotonic() + 10
    while not beats and time.monotonic() < deadline:
        time.sleep(0.05)
    listener.stop()
    runner.join(10)
    assert beats[0]["connected"] is False and beats[0]["stopped"] is False
    assert beats[-1]["stopped"] is True and {"applied", "rejected", "store_errors", "at"} <= set(beats[-1])


def test_the_replica_hook(app, scrape, monkeypatch):
    assert value(scrape(), "yizhan_replica_healthy", replica="standby1") is None  # no hook: nothing
    monkeypatch.setitem(app.extensions, "yizhan_replica_status",
                        lambda: [{"name": "standby1", "healthy": True, "lag_s": 0.25},
                                 {"name": "standby2", "healthy": False, "lag_s": None}])
    body = scrape()
    assert value(body, "yizhan_replica_healthy", replica="standby1") == 1
    assert value(body, "yizhan_replica_lag_seconds", replica="standby1") == 0.25
    assert value(body, "yizhan_replica_healthy", replica="standby2") == 0
    assert value(body, "yizhan_replica_lag_seconds", replica="standby2") is None


# -- gunicorn, 2 workers, multi-process ------------------------------------------------------------

GUNICORN = os.path.join(PROJECT_ROOT, ".venv", "bin", "gunicorn")
PHONE = "13987654321"
SECRET_QUERY = "qs-" + uuid.uuid4().hex
PASSWORD = "pw-" + uuid.uuid4().hex


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, headers=None, data=None):
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


@pytest.fixture(params=("sqlite", "postgis"))
def served(request, apps, tmp_path):
    """gunicorn -w 2 on a migrated database of its own, PROMETHEUS_MULTIPROC_DIR set, the child_exit
    hook from a config file as deploy/gunicorn.conf.py would have it, and its access and error logs."""
    url = (f"sqlite:///{tmp_path}/served.sqlite3" if request.param == "sqlite"
           else own_postgis_database(apps, "metrics"))
    made = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with made.app_context():
        upgrade()
    from app.extensions import db

    with made.app_context():
        db.engine.dispose()
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("from app.metrics import child_exit  # noqa: F401  (gunicorn calls it by name)\n")
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
           "YIZHAN_SECRET_KEY": uuid.uuid4().hex * 2, "PYTHONPATH": PROJECT_ROOT}
    env.pop("YIZHAN_METRICS_TOKEN", None)
    logs = {name: tmp_path / f"{name}.log" for name in ("access", "error", "stdout")}
    with open(logs["stdout"], "w") as out:
        server = subprocess.Popen(
            [GUNICORN, "--config", str(conf), "--workers", "2", "--bind", f"127.0.0.1:{port}",
             "--logger-class", "app.logs.AccessLogger", "--access-logfile", str(logs["access"]),
             "--error-logfile", str(logs["error"]), "--capture-output", "wsgi:app"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, logs["error"].read_text()
            time.sleep(0.2)
        yield {"base": base, "logs": logs, "multiproc": multiproc, "server": server}
    finally:
        if server.poll() is None:  # (a test may have stopped it to read its logs whole)
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


def test_two_workers_counts_are_summed_and_their_logs_hold_no_secret(served):
    base = served["base"]
    pids, total = set(), 0
    healthz = {"endpoint": "health.healthz", "method": "GET", "status": "200"}
    before = value(_get(base + "/metrics")[2], "yizhan_http_request_duration_seconds_count", **healthz)
    with ThreadPoolExecutor(8) as pool:
        while len(pids) < 2 or total < 40:
            answers = list(pool.map(lambda _: _get(base + "/healthz"), range(8)))
            assert all(status == 200 for status, _, _ in answers)
            pids |= {json.loads(body)["pid"] for _, _, body in answers}
            total += len(answers)
            assert total <= 2000, "one worker answered everything"
    status, headers, body = _get(base + "/metrics")
    assert status == 200, body
    # Every answer of both workers, whichever worker answers the scrape (the fixture's readiness polls before).
    assert value(body, "yizhan_http_request_duration_seconds_count", **healthz) == before + total
    written_by = {name.rsplit("_", 1)[-1].split(".")[0] for name in os.listdir(served["multiproc"])}
    assert {str(pid) for pid in pids} <= written_by  # both workers wrote their own files
    # Pool gauges summed over the live workers: each checked connections out and back in.
    assert value(body, "yizhan_db_pool_checked_out", pool="primary") is not None

    # Requests that carry secrets: a tracking token in the path, tokens in the query, a password, a
    # phone, a bearer token; and a request id from the proxy.
    tracking = "7-" + uuid.uuid4().hex
    _get(f"{base}/r/{tracking}?lang=en&token={SECRET_QUERY}")
    _get(f"{base}/open311/v2/tokens/{tracking}.json")
    _get(f"{base}/staff/login", data=f"email=li%40example.cn&password={PASSWORD}".encode(),
         headers={"Content-Type": "application/x-www-form-urlencoded"})
    _get(f"{base}/open311/v2/requests.json", data=f"api_key={SECRET_QUERY}&phone={PHONE}".encode(),
         headers={"Content-Type": "application/x-www-form-urlencoded"})
    _get(f"{base}/api/v1/ops/work-orders?access_token={SECRET_QUERY}",
         headers={"Authorization": f"Bearer {SECRET_QUERY}"})
    status, headers, _ = _get(f"{base}/api/v1/meta", headers={"X-Request-Id": "proxy-id-1"})
    assert headers["X-Request-Id"] == "proxy-id-1"

    os.killpg(served["server"].pid, signal.SIGTERM)  # flush and close the logs
    served["server"].wait(30)
    access = served["logs"]["access"].read_text()
    everything = access + served["logs"]["error"].read_text() + served["logs"]["stdout"].read_text()
    for secret in (tracking, SECRET_QUERY, PASSWORD, PHONE, "li@example.cn", "li%40example.cn"):
        assert secret not in everything, secret
    lines = [json.loads(line) for line in access.splitlines()]
    assert len(lines) >= total + 6
    meta = [line for line in lines if line["path"] == "/api/v1/meta"]
    assert meta and meta[0]["request_id"] == "proxy-id-1" and meta[0]["endpoint"] == "api.meta"
    assert {"/r/…", "/open311/v2/tokens/….json"} <= {line["path"] for line in lines}
    app_lines = [json.loads(line) for line in (served["logs"]["error"].read_text()).splitlines() if line.startswith("{")]
    assert any(line["logger"] == "yizhan.access" and line.get("request_id") == "proxy-id-1" for line in app_lines)


def test_a_dead_workers_live_gauges_stop_counting(served):
    """child_exit marks a killed worker's files dead: its live gauges' files go, and the pool size
    is again two workers' (the replacement's and the survivor's), not three."""
    base = served["base"]
    pids = set()
    with ThreadPoolExecutor(8) as pool:
        while len(pids) < 2:
            pids |= {json.loads(body)["pid"] for _, _, body in pool.map(lambda _: _get(base + "/healthz"), range(8))}
    size = value(_get(base + "/metrics")[2], "yizhan_db_pool_size", pool="primary")
    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # gunicorn starts a new worker, whose pool registers as it starts
        body = _get(base + "/metrics")[2]
        dead = [n for n in os.listdir(served["multiproc"]) if n.endswith(f"_{victim}.db") and n.startswith("gauge_live")]
        if not dead:
            break
        assert time.monotonic() < deadline, "the dead worker's live gauge files are still there"
        time.sleep(0.2)
    deadline = time.monotonic() + 30
    while value(body, "yizhan_db_pool_size", pool="primary") != size:  # the new worker's pool, not the dead one's
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
        body = _get(base + "/metrics")[2]
