"""The deployment files (deploy/): systemd units that systemd accepts and whose commands exist, an
environment file that documents every setting the app reads, and gunicorn reloads (SIGHUP) that
drop no request."""
from __future__ import annotations

import configparser
import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time

import pytest

from tests.helpers import own_postgis_database
from tests.served import (NEAREST, ROOT, VENV_BIN, dispose, get, gunicorn, migrated_with_world, tmpdir,
                          workers_of)

UNITS = sorted(glob.glob(os.path.join(ROOT, "deploy", "systemd", "*")))
SERVICES = [u for u in UNITS if u.endswith(".service")]
ENV_FILE = os.path.join(ROOT, "deploy", "yizhan.env")
INSTALLED_ROOT, INSTALLED_ENV = "/opt/yizhan/current", "/etc/yizhan/yizhan.env"  # current: a symlink
# Every service runs as its own user, can write nothing but its state directory, gains no privilege.
HARDENING = {"User": "yizhan", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
             "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": ""}
LONG_RUNNING = ("yizhan-web.service", "yizhan-sensors.service", "yizhan-feeds.service")


def _unit(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(path)
    return parser


def _env_file() -> dict[str, str]:
    """NAME=value lines of deploy/yizhan.env, commented-out defaults included."""
    found = {}
    for line in open(ENV_FILE, encoding="utf-8"):
        match = re.match(r"#?([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_units_pass_systemd_analyze_verify(tmp_path):
    """systemd's own check, on the units with their paths pointed at this checkout (it checks that
    the executables exist): no unknown keys, no unparsable values."""
    for unit in UNITS:
        text = open(unit).read().replace(INSTALLED_ENV, ENV_FILE).replace(INSTALLED_ROOT, ROOT)
        (tmp_path / os.path.basename(unit)).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr + result.stdout


def test_services_share_the_env_file_and_are_hardened():
    assert len(SERVICES) == 6
    for path in SERVICES:
        service = _unit(path)["Service"]
        assert service["EnvironmentFile"] == INSTALLED_ENV, path
        assert service["WorkingDirectory"] == INSTALLED_ROOT, path
        for key, value in HARDENING.items():
            assert service.get(key) == value, (path, key)
        if os.path.basename(path) in LONG_RUNNING:
            assert service["Restart"] == "on-failure", path
    web = _unit(os.path.join(ROOT, "deploy", "systemd", "yizhan-web.service"))["Service"]
    assert web["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert web["StateDirectory"] == "yizhan"
    assert _env_file()["YIZHAN_UPLOAD_DIR"] == "/var/lib/yizhan/uploads"  # inside that state directory


def test_every_timer_starts_a_service():
    for path in (u for u in UNITS if u.endswith(".timer")):
        assert os.path.exists(path[:-len(".timer")] + ".service"), path
        assert _unit(path)["Timer"]["OnCalendar"]
    assert _unit(os.path.join(ROOT, "deploy", "systemd", "yizhan-tick.timer"))["Timer"]["OnCalendar"] == "*-*-* *:*:00"


def _exec_start(path: str) -> list[str]:
    """The unit's command, run from this checkout, with ${VARS} from the env file (as systemd does)."""
    env = _env_file()
    command = _unit(path)["Service"]["ExecStart"]
    command = re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: env[m.group(1)], command)
    argv = shlex.split(command)
    assert argv[0].startswith(INSTALLED_ROOT + "/.venv/bin/"), path
    return [os.path.join(VENV_BIN, os.path.basename(argv[0])), *(a.replace(INSTALLED_ROOT, ROOT) for a in argv[1:])]


def test_every_exec_start_is_a_real_command(tmp_path):
    """Each unit's command exists: the flask ones answer --help (an unknown command or option
    exits 2), gunicorn loads deploy/gunicorn.conf.py and the app (--check-config)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/check.sqlite3",
           "YIZHAN_UPLOAD_DIR": str(tmp_path / "uploads")}
    seen = set()
    for path in SERVICES:
        argv = _exec_start(path)
        program = os.path.basename(argv[0])
        seen.add(program)
        argv += ["--help"] if program == "flask" else ["--check-config"]
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (path, result.stderr)
    assert seen == {"flask", "gunicorn"}


def _settings_the_app_reads() -> set[str]:
    """Environment variables named in app/: read with os.environ.get (not a WSGI request's environ),
    the config helpers (_seconds, _whole, _speed), a travel mode's speed_env, or a *_ENV constant."""
    pattern = re.compile(r'(?:os\.environ\.get|_seconds|_whole|_speed)\(\s*"([A-Z][A-Z0-9_]+)"'
                         r'|Mode\([^)]*?"([A-Z][A-Z0-9_]+_KMH)"'
                         r'|_ENV\s*=\s*"([A-Z][A-Z0-9_]+)"')
    names = set()
    for path in glob.glob(os.path.join(ROOT, "app", "**", "*.py"), recursive=True):
        for groups in pattern.findall(open(path, encoding="utf-8").read()):
            names.update(g for g in groups if g)
    return names


def test_env_file_documents_every_setting():
    read = _settings_the_app_reads()
    assert {"DATABASE_URL", "YIZHAN_SECRET_KEY", "YIZHAN_DB_STATEMENT_TIMEOUT_S", "YIZHAN_WALK_KMH",
            "YIZHAN_MQTT_PASSWORD"} <= read  # the scan itself finds each way of reading one
    assert read - set(_env_file()) == set()


RELEASE_ROUTE = """

@app.get("/__release")
def _release():
    import sys

    return getattr(sys.modules["app"], "RELEASE", "1")
"""


def _release(releases: str, name: str, version: str | None) -> str:
    """A copy of this checkout as /opt/yizhan/releases/<name> would hold it, with a route saying
    which `app` package the answering worker imported (``RELEASE`` in app/__init__.py: a module
    the gunicorn master imports too, so a stale one would show)."""
    path = os.path.join(releases, name)
    for part in ("app", "static", "migrations", "deploy"):
        shutil.copytree(os.path.join(ROOT, part), os.path.join(path, part),
                        ignore=shutil.ignore_patterns("__pycache__"))
    with open(os.path.join(path, "wsgi.py"), "w") as f:
        f.write(open(os.path.join(ROOT, "wsgi.py")).read() + RELEASE_ROUTE)
    if version:
        with open(os.path.join(path, "app", "__init__.py"), "a") as f:
            f.write(f"\nRELEASE = {version!r}\n")
    return path


def _point(link: str, target: str) -> None:
    """Point the `current` symlink at ``target`` atomically (a new link renamed over the old)."""
    os.symlink(target, link + ".new")
    os.replace(link + ".new", link)


def test_gunicorn_reload_serves_the_new_release_and_drops_no_request(apps):
    """`current` is switched to a new release and gunicorn gets SIGHUP, twice, under a steady
    stream of requests (a new connection each, as nginx opens them): every request is answered
    200, each reload replaces the workers, and after the first one the answers come from the new
    release's code."""
    url = own_postgis_database(apps, "reload")
    dispose(migrated_with_world(url, tmpdir("reload-uploads")))
    releases = tmpdir("releases")
    current = os.path.join(releases, "current")
    _point(current, _release(releases, "r1", None))
    new = _release(releases, "r2", "2")
    outcomes: list[object] = []
    stop = threading.Event()

    def fire(port):
        while not stop.is_set():
            try:
                # A request may wait in the listen queue while the new workers import the release
                # (gunicorn stops the old ones as it starts the new): late, but not dropped.
                outcomes.append(get(port, NEAREST, timeout=120)[0])
            except OSError as exc:  # a refused or reset connection: a dropped request
                outcomes.append(exc)

    def reload(server):
        before, answered = workers_of(server.pid), len(outcomes)
        server.send_signal(signal.SIGHUP)
        # Wait (bounded) until none of the old workers is left and requests went on after.
        deadline = time.monotonic() + 60
        while (workers_of(server.pid) & before or len(outcomes) < answered + 50) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not workers_of(server.pid) & before, "the old workers were not replaced"
        assert len(workers_of(server.pid)) == 2

    log = os.path.join(tmpdir("reload"), "gunicorn.log")
    with gunicorn({"DATABASE_URL": url}, log, release=current) as (port, server):
        assert {get(port, "/__release")[2] for _ in range(6)} == {b"1"}
        threads = [threading.Thread(target=fire, args=(port,)) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            _point(current, new)
            reload(server)
            assert {get(port, "/__release")[2] for _ in range(6)} == {b"2"}
            reload(server)
        finally:
            stop.set()
            for t in threads:
                t.join()
    failures = [o for o in outcomes if o != 200]
    assert len(outcomes) > 100 and failures == [], failures[:5]
    assert "GET /api/v1/stations/nearest" in open(log).read()  # the access log, on stdout
