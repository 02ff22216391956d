"""The restore drill, on both stores: a running service (gunicorn, answering requests all along)
is backed up with `flask backup create`, the backup restored with `flask backup restore` into a
fresh database and upload directory, and an app on the restored copy answers the same nearest and
work-order queries and serves the same photo, byte for byte."""
from __future__ import annotations

import json
import os
import subprocess
import tarfile
import threading

import pytest
from sqlalchemy import create_engine, make_url, text

from app import backup, create_app
from app.ops.service import ReportInput
from tests.helpers import own_postgis_database
from tests.images import make_noisy_jpeg
from tests.served import NEAREST, ROOT, VENV_BIN, dispose, get, gunicorn, migrated_with_world, tmpdir

SECRET = "restore-drill"
ADMIN = "admin@yizhan.example"


def _database(apps, backend: str, name: str) -> str:
    if backend == "postgis":
        return own_postgis_database(apps, name)
    return f"sqlite:///{tmpdir(name)}/yizhan.sqlite3"


def _new_database(apps, backend: str, name: str) -> str:
    """What an operator restores into (README, "Backups and the restore drill"): a database that
    has never held anything, owned by an ordinary role (the app's), with the extensions created by
    the superuser. The URL connects as that role."""
    if backend != "postgis":
        return _database(apps, backend, name)
    base = make_url(apps["postgis"].config["SQLALCHEMY_DATABASE_URI"])
    url = base.set(database=f"{base.database}_{name}", username=f"{base.database}_owner", password=None)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:  # names cannot be bound
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
            if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": url.username}).first() is None:
                conn.exec_driver_sql(f'CREATE ROLE "{url.username}" LOGIN')
            conn.exec_driver_sql(f'CREATE DATABASE "{url.database}" OWNER "{url.username}"')
    finally:
        admin.dispose()
    superuser = create_engine(base.set(database=url.database), isolation_level="AUTOCOMMIT")
    try:
        with superuser.connect() as conn:
            conn.exec_driver_sql("CREATE EXTENSION postgis; CREATE EXTENSION pg_trgm")
    finally:
        superuser.dispose()
    return url.render_as_string(hide_password=False)


def _flask(env: dict, *args: str) -> subprocess.CompletedProcess:
    """The CLI as an operator runs it: `flask --app wsgi …` with the settings in the environment."""
    return subprocess.run([os.path.join(VENV_BIN, "flask"), "--app", "wsgi", *args], cwd=ROOT,
                          env={**os.environ, "YIZHAN_SECRET_KEY": SECRET, **env},
                          capture_output=True, text=True, timeout=240)


def _answers(client, headers, work_order_id, photo_url):
    nearest = client.get(NEAREST)
    order = client.get(f"/api/v1/ops/work-orders/{work_order_id}", headers=headers)
    listed = client.get("/api/v1/ops/work-orders", headers=headers)
    photo = client.get(photo_url, headers=headers)
    assert [r.status_code for r in (nearest, order, listed, photo)] == [200] * 4
    return nearest.json["results"], order.json, listed.json, photo.data


@pytest.mark.parametrize("backend", ["sqlite", "postgis"])
def test_restore_drill(apps, backend):
    source_url, uploads = _database(apps, backend, "backup_source"), tmpdir("backup-uploads")
    app = migrated_with_world(source_url, uploads)
    ops = app.extensions["yizhan_ops"]
    ops.accounts.create_user(ADMIN, "correct horse battery", "admin", None)
    headers = {"Authorization": f"Bearer {ops.accounts.create_token(ADMIN)}"}
    station_id = app.test_client().get(NEAREST).json["results"][0]["id"]
    done = ops.submit_report(ReportInput(category="dirty", station_id=station_id, description="地面很脏",
                                         phone="13812345678", photos=(make_noisy_jpeg(),)))
    client = app.test_client()
    photo_url = client.get(f"/api/v1/ops/work-orders/{done.work_order_id}", headers=headers).json["photos"][0]["url"]
    before = _answers(client, headers, done.work_order_id, photo_url)
    dispose(app)

    env = {"DATABASE_URL": source_url, "YIZHAN_UPLOAD_DIR": uploads}
    statuses, stop = [], threading.Event()
    with gunicorn({**env, "YIZHAN_SECRET_KEY": SECRET}, os.path.join(tmpdir("backup-log"), "gunicorn.log")) \
            as (port, _):
        def fire():
            while not stop.is_set():
                statuses.append(get(port, NEAREST)[0])
                statuses.append(get(port, f"/api/v1/ops/work-orders/{done.work_order_id}", headers)[0])

        firing = threading.Thread(target=fire)
        firing.start()
        try:
            made = _flask(env, "backup", "create", tmpdir("backups"))
        finally:
            stop.set()
            firing.join()
    assert made.returncode == 0, made.stderr
    assert statuses and set(statuses) == {200}  # the service answered throughout
    directory = made.stdout.strip()
    manifest = json.load(open(os.path.join(directory, "manifest.json")))
    assert manifest["photos"] == 1 and manifest["alembic_revision"]
    assert manifest["store"] == ("postgresql" if backend == "postgis" else "sqlite")

    target_url, target_uploads = _new_database(apps, backend, "backup_restored"), tmpdir("restored-uploads")
    restored = _flask({"DATABASE_URL": target_url, "YIZHAN_UPLOAD_DIR": target_uploads}, "backup", "restore",
                      directory)
    assert restored.returncode == 0, restored.stderr

    copy = create_app({"SQLALCHEMY_DATABASE_URI": target_url, "YIZHAN_UPLOAD_DIR": target_uploads,
                       "SECRET_KEY": SECRET})
    try:
        after = _answers(copy.test_client(), headers, done.work_order_id, photo_url)
    finally:
        dispose(copy)
    assert after == before
    assert after[3] == open(_only_photo(uploads), "rb").read()  # the stored file itself, served unchanged


def _only_photo(uploads: str) -> str:
    found = [os.path.join(d, f) for d, _, files in os.walk(uploads) for f in files]
    assert len(found) == 1
    return found[0]


def test_restore_refuses_a_damaged_backup_and_a_database_in_use(tmp_path):
    url, uploads = f"sqlite:///{tmp_path}/a.sqlite3", str(tmp_path / "uploads")
    dispose(migrated_with_world(url, uploads))
    made = backup.create(url, uploads, str(tmp_path / "backups"))
    with pytest.raises(backup.BackupError, match="not empty|already exists"):
        backup.restore(str(made), url, str(tmp_path / "elsewhere"))  # the live database itself
    with open(made / "database.sqlite3", "r+b") as f:
        f.seek(200)
        f.write(b"\0damage")
    with pytest.raises(backup.BackupError, match="differs from the manifest"):
        backup.restore(str(made), f"sqlite:///{tmp_path}/b.sqlite3", str(tmp_path / "b-uploads"))
    assert not os.path.exists(tmp_path / "b.sqlite3")


def test_restore_refuses_a_postgres_database_with_anything_of_ours(apps, tmp_path):
    """A database without tables but with a function of ours left behind is not a new one."""
    url = own_postgis_database(apps, "backup_leftovers")
    dispose(migrated_with_world(url, str(tmp_path / "u")))
    made = backup.create(url, str(tmp_path / "u"), str(tmp_path / "backups"))
    target = _new_database(apps, "postgis", "backup_function_left")
    engine = create_engine(target)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE FUNCTION left_behind() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    engine.dispose()
    with pytest.raises(backup.BackupError, match=r"not empty \(1 tables"):
        backup.restore(str(made), target, str(tmp_path / "restored"))


def test_a_failed_backup_leaves_no_directory(tmp_path):
    """A database that is not migrated (no schema revision): refused, and no half backup left."""
    url = f"sqlite:///{tmp_path}/empty.sqlite3"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE unrelated (x int)")
    engine.dispose()
    with pytest.raises(backup.BackupError, match="revision"):
        backup.create(url, str(tmp_path / "uploads"), str(tmp_path / "backups"))
    assert list((tmp_path / "backups").iterdir()) == []


def test_only_finished_photos_are_backed_up(tmp_path):
    """A photo a request is still writing (a .upload-*.tmp file) is not a photo yet."""
    url, uploads = f"sqlite:///{tmp_path}/a.sqlite3", tmp_path / "uploads"
    dispose(migrated_with_world(url, str(uploads)))
    (uploads / "ab").mkdir(parents=True)
    (uploads / "ab" / ".upload-x.tmp").write_bytes(b"half a photo")
    made = backup.create(url, str(uploads), str(tmp_path / "backups"))
    with tarfile.open(made / "uploads.tar") as tar:
        assert tar.getnames() == []
    assert backup.verify(str(made))["photos"] == 0
