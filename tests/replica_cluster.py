"""A real primary and streaming standby (scripts/ensure-replica.sh), and PgBouncer in front of a server.

The pair is two PostgreSQL clusters of their own (yizhan_primary on 5440, yizhan_standby on 5441),
made once and reused; the machine's main cluster is never reconfigured. Each test run gets a fresh
database on the primary ("<TEST_DATABASE_URL's name>_replica"), which the standby replays.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager

import psycopg
from sqlalchemy import make_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRIMARY_PORT, STANDBY_PORT = 5440, 5441
PRIMARY, STANDBY = "yizhan_primary", "yizhan_standby"  # the clusters' names (pg_ctlcluster)


def ensure_pair() -> None:
    """Both clusters up and the standby streaming (made, started or rebuilt as needed)."""
    done = subprocess.run([os.path.join(ROOT, "scripts", "ensure-replica.sh")], capture_output=True, text=True,
                          env={**os.environ, "PRIMARY_PORT": str(PRIMARY_PORT), "STANDBY_PORT": str(STANDBY_PORT)})
    if done.returncode != 0:
        raise RuntimeError(f"the replica pair could not be made: {done.stderr.strip()}")


def url(port: int, database: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"


def sql(port: int, statement: str, params=None, database: str = "postgres"):
    """One statement as the superuser on a server of the pair (autocommit); its first row."""
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=database, autocommit=True,
                         connect_timeout=5) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchone() if cursor.description else None


def fresh_database(base_url: str, suffix: str = "replica") -> str:
    """An empty database on the primary, named after the suite's own database (parallel worktrees
    with their own TEST_DATABASE_URL do not share one); the standby replays its creation."""
    name = f"{make_url(base_url).database}_{suffix}"
    sql(PRIMARY_PORT, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # a name cannot be bound
    sql(PRIMARY_PORT, f'CREATE DATABASE "{name}"')
    wait_replayed()
    return name


def wait_replayed(deadline_s: float = 60) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    (target,) = sql(PRIMARY_PORT, "SELECT pg_current_wal_lsn()::text")
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        try:
            (done,) = sql(STANDBY_PORT, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
            if done:
                return
        except psycopg.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the standby did not replay up to {target} within {deadline_s} s")


def pg_ctlcluster(cluster: str, action: str, *extra: str) -> None:
    listed = subprocess.run(["pg_lsclusters", "--no-header"], check=True, capture_output=True, text=True).stdout
    version = next(line.split()[0] for line in listed.splitlines() if line.split()[1] == cluster)
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, action, *extra],
                   check=True, capture_output=True)


def wait_until(condition, what: str, deadline_s: float = 60, every_s: float = 0.05):
    """Poll ``condition`` until it is truthy (returned), failing after the deadline: a state change
    waited for, never a time asserted."""
    until = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > until:
            raise AssertionError(f"not within {deadline_s} s: {what}")
        time.sleep(every_s)


# -- PgBouncer -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DEPLOYED_INI = os.path.join(ROOT, "deploy", "pgbouncer.ini")


def pgbouncer_ini(server_port: int, port: int, where: str, pool_size: int) -> str:
    """deploy/pgbouncer.ini as deployed, but for a test: any database name on this server,
    trust on loopback, a port, pool size, log and pid file of its own."""
    with open(DEPLOYED_INI) as f:
        ini = f.read()
    ini = re.sub(r"^yizhan = host=<SERVER_HOST> port=5432 dbname=yizhan ",
                 f"* = host=127.0.0.1 port={server_port} ", ini, count=1, flags=re.M)
    settings = {"listen_port": port, "unix_socket_dir": "", "auth_type": "trust",
                "auth_file": f"{where}/userlist.txt", "default_pool_size": pool_size,
                "logfile": f"{where}/pgbouncer.log", "pidfile": f"{where}/pgbouncer.pid"}
    for key, value in settings.items():
        ini, found = re.subn(rf"^{key} = .*$", f"{key} = {value}".rstrip(), ini, count=1, flags=re.M)
        assert found, f"deploy/pgbouncer.ini has no {key} line"
    assert "<" not in ini.split("[pgbouncer]")[0].split("[databases]")[1], "a placeholder left in [databases]"
    return ini


@contextmanager
def pgbouncer(server_port: int, pool_size: int = 5):
    """A PgBouncer in transaction pooling mode in front of 127.0.0.1:server_port; yields its port.
    It refuses to run as root, so as root it runs as the postgres user (in a directory that user owns)."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        raise RuntimeError("pgbouncer is not installed: run `make setup` (scripts/ensure-debs.sh)")
    where = tempfile.mkdtemp(prefix="yizhan-pgbouncer-")
    port = _free_port()
    with open(os.path.join(where, "pgbouncer.ini"), "w") as f:
        f.write(pgbouncer_ini(server_port, port, where, pool_size))
    with open(os.path.join(where, "userlist.txt"), "w") as f:
        f.write('"postgres" ""\n')
    command = [binary, os.path.join(where, "pgbouncer.ini")]
    if os.geteuid() == 0:
        shutil.chown(where, "postgres")
        for name in os.listdir(where):
            shutil.chown(os.path.join(where, name), "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        def listening():
            if process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {process.stderr.read().decode(errors='replace')}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_until(listening, f"pgbouncer listening on {port}", deadline_s=30)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGINT)  # its own session: pgbouncer and runuser, nothing else
        process.wait(timeout=30)
        shutil.rmtree(where, ignore_errors=True)
