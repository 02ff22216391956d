"""deploy/postgresql/: the server settings are accepted by this machine's PostgreSQL (a throwaway
data directory that includes them, read by the server binary itself), and the per-table settings
apply to the migrated schema."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess

from sqlalchemy import text

from app.extensions import db
from tests.served import ROOT, tmpdir

CONF = os.path.join(ROOT, "deploy", "postgresql", "yizhan.conf")
TABLES = os.path.join(ROOT, "deploy", "postgresql", "tables.sql")


def _server_major(app) -> int:
    with app.app_context(), db.engine.connect() as conn:
        return int(conn.execute(text("SHOW server_version_num")).scalar()) // 10000


def _as_owner(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: then as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def test_server_settings_are_accepted_by_postgres(apps):
    bin_dir = f"/usr/lib/postgresql/{_server_major(apps['postgis'])}/bin"
    data = os.path.join(tmpdir("pgconf"), "data")
    os.makedirs(os.path.dirname(data), exist_ok=True)
    if os.geteuid() == 0:
        os.chown(os.path.dirname(data), pwd.getpwnam("postgres").pw_uid, -1)
    copy = os.path.join(os.path.dirname(data), "yizhan.conf")
    shutil.copy(CONF, copy)
    os.chmod(copy, 0o644)
    subprocess.run(_as_owner([f"{bin_dir}/initdb", "-D", data]), check=True, capture_output=True, timeout=120)
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write(f"include '{copy}'\n")
    settings = dict(re.findall(r"^(\w+)\s*=\s*(\S+)", open(CONF).read(), re.M))
    assert settings["random_page_cost"] == "1.1" and len(settings) > 15
    for name, value in settings.items():
        # -C reads the configuration as the server would, and exits non-zero on any error in it.
        shown = subprocess.run(_as_owner([f"{bin_dir}/postgres", "-D", data, "-C", name]),
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        if not re.search(r"[A-Za-z]", value):  # plain numbers come back as written
            assert shown.stdout.strip() == value, name


def test_table_settings_apply_to_the_migrated_schema(apps):
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", open(TABLES).read()).split(";") if s.strip()]
    with apps["postgis"].app_context():
        engine = db.engine
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            for statement in statements:
                conn.exec_driver_sql(statement)
            options = dict(conn.execute(text(
                "SELECT relname, reloptions FROM pg_class WHERE relname IN ('station', 'outbox')")).all())
            storage = conn.execute(text("SELECT attstorage FROM pg_attribute "
                                        "WHERE attrelid = 'network'::regclass AND attname = 'graph'")).scalar()
        finally:
            outer.rollback()
    assert "fillfactor=85" in options["station"] and "autovacuum_vacuum_threshold=500" in options["outbox"]
    assert storage == "e"
