"""Backups: the database and the stored photos in one dated directory with a manifest, and their
restore into an empty database and an empty upload directory. No Flask: the CLI (app/cli.py,
``flask --app wsgi backup create|restore``) passes the settings in.

* PostGIS: ``pg_dump --format=custom`` of the running database (one consistent snapshot; the
  service keeps serving and writing), restored with ``pg_restore`` in one transaction. The client
  programs must be at least the server's version: the server's own are used when installed
  (Debian: /usr/lib/postgresql/<major>/bin).
* SQLite: the online backup API (a consistent copy while other connections write).
* Photos: the upload directory's finished files, in ``uploads.tar``. The database is copied first:
  a photo is written (fsync'd, linked into place) before the transaction that refers to it commits,
  and stored files are never changed, so every photo the database copy refers to is already there.

``manifest.json`` names each file with its size and SHA-256, the store, the schema's Alembic
revision and the photos' count; restore checks every sum before it touches anything.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from app.ops.photos import PhotoStore

MANIFEST = "manifest.json"
DUMPS = {"postgresql": "database.dump", "sqlite": "database.sqlite3"}
UPLOADS = "uploads.tar"
FORMAT = 1  # the manifest's own version


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why."""


def create(database_url: str, upload_dir: str, parent: str, now: datetime | None = None) -> Path:
    """Back up into a new directory ``<parent>/yizhan-<UTC time>``; returns it."""
    now = now or datetime.now(timezone.utc)
    target = Path(parent) / f"yizhan-{now.strftime('%Y%m%dT%H%M%SZ')}"
    try:
        target.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise BackupError(f"{target} already exists") from None
    try:
        _fill(target, make_url(database_url), upload_dir, now)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # never leave a backup without its manifest
        raise
    return target


def _fill(target: Path, url, upload_dir: str, now: datetime) -> None:
    store = _store(url)
    revision = _revision(url)
    if store == "postgresql":
        _pg_dump(url, target / DUMPS[store])
    else:
        _sqlite_copy(url.database, target / DUMPS[store])
    if _revision(url) != revision:
        raise BackupError("a migration ran during the backup; run it again")
    photos = 0
    with tarfile.open(target / UPLOADS, "w") as tar:
        for relative in PhotoStore(upload_dir).stored():
            try:
                tar.add(Path(upload_dir) / relative, arcname=str(relative), recursive=False)
            except FileNotFoundError:  # a failed request's photo, removed again: nothing refers to it
                continue
            photos += 1
    manifest = {
        "format": FORMAT, "created_at": now.isoformat(), "store": store, "alembic_revision": revision,
        "photos": photos,
        "files": {name: _describe(target / name) for name in (DUMPS[store], UPLOADS)},
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def verify(backup: str) -> dict:
    """The manifest, after checking every file's size and SHA-256 against it."""
    path = Path(backup)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} has no readable {MANIFEST}: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: unknown backup format {manifest.get('format')!r}")
    for name, expected in manifest["files"].items():
        if not (path / name).is_file():
            raise BackupError(f"{path / name} is missing")
        if _describe(path / name) != expected:
            raise BackupError(f"{path / name} differs from the manifest (damaged or changed)")
    return manifest


def restore(backup: str, database_url: str, upload_dir: str) -> dict:
    """Restore ``backup`` into an empty database and an empty (or missing) upload directory;
    returns its manifest. Refuses, before writing anything, when either is not empty."""
    manifest = verify(backup)
    url = make_url(database_url)
    store = _store(url)
    if store != manifest["store"]:
        raise BackupError(f"the backup is of a {manifest['store']} database; DATABASE_URL is {store}")
    uploads = Path(upload_dir)
    if uploads.exists() and any(uploads.iterdir()):
        raise BackupError(f"the upload directory {uploads} is not empty")
    dump = Path(backup) / DUMPS[store]
    if store == "postgresql":
        _require_empty_postgres(url)
        _pg_restore(url, dump)
    else:
        if url.database and os.path.exists(url.database) and os.path.getsize(url.database) > 0:
            raise BackupError(f"the SQLite database {url.database} already exists")
        _sqlite_copy(str(dump), Path(url.database))
    uploads.mkdir(parents=True, exist_ok=True)
    with tarfile.open(Path(backup) / UPLOADS) as tar:
        tar.extractall(uploads, filter="data")  # "data": no absolute paths, links out or devices
    restored = _revision(url)
    if restored != manifest["alembic_revision"]:
        raise BackupError(f"restored schema is at {restored!r}, the backup's at {manifest['alembic_revision']!r}")
    return manifest


# -- the stores -----------------------------------------------------------------------------------


def _store(url) -> str:
    name = url.get_backend_name()
    if name not in DUMPS:
        raise BackupError(f"no backup for {name!r} databases")
    return name


def _revision(url) -> str:
    """The schema's Alembic revision (a database without one is not Yizhan's, or not migrated)."""
    if url.get_backend_name() == "sqlite" and not (url.database and os.path.isfile(url.database)):
        raise BackupError(f"no SQLite database at {url.database}")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot read the schema's revision from {url.database}: "
                          f"{type(exc).__name__} (run `flask db upgrade` first?)") from None
    finally:
        engine.dispose()


def _sqlite_copy(source: str, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
    finally:
        src.close()
        dst.close()


def _libpq(url) -> tuple[str, dict]:
    """A libpq URI for pg_dump/pg_restore, and their environment: the password travels in
    PGPASSWORD, never on a command line that `ps` shows."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _server_major(url) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SHOW server_version_num")).scalar()) // 10000
    finally:
        engine.dispose()


def _program(name: str, server_major: int) -> str:
    """``pg_dump``/``pg_restore`` at least as new as the server (an older one refuses to dump)."""
    own = f"/usr/lib/postgresql/{server_major}/bin/{name}"
    program = own if os.access(own, os.X_OK) else shutil.which(name)
    if program is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client-{server_major})")
    version = subprocess.run([program, "--version"], capture_output=True, text=True, check=True).stdout
    major = int(re.search(r"\)\s*(\d+)", version).group(1))  # "pg_dump (PostgreSQL) 15.20 (Debian …)"
    if major < server_major:
        raise BackupError(f"{program} is version {major}, the server {server_major}: "
                          f"install postgresql-client-{server_major}")
    return program


def _run(argv: list[str], env: dict) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{os.path.basename(argv[0])} failed: {result.stderr.strip()}")


def _pg_dump(url, target: Path) -> None:
    uri, env = _libpq(url)
    _run([_program("pg_dump", _server_major(url)), "--format=custom", "--no-owner", "--no-privileges",
          "--file", str(target), "--dbname", uri], env)


_TOC_ENTRY = re.compile(r"^\d+; \d+ \d+ (TABLE DATA|TABLE|COMMENT) (\S+) (\S+)")


def _restorable(listing: str) -> str:
    """The dump's table of contents without what belongs to extensions, which the app's role may
    not write and which the database's own CREATE EXTENSION has already put there: comments on
    extensions, and rows of an extension's configuration tables (PostGIS's spatial_ref_sys: its
    data is in the dump with no TABLE entry of its own, the table being the extension's; Yizhan
    adds no rows to it)."""
    entries = [(_TOC_ENTRY.match(line), line) for line in listing.splitlines(keepends=True)]
    tables = {(m.group(2), m.group(3)) for m, _ in entries if m and m.group(1) == "TABLE"}
    return "".join(line for m, line in entries if not m or not (
        (m.group(1) == "COMMENT" and m.group(2) == "-" and m.group(3) == "EXTENSION")
        or (m.group(1) == "TABLE DATA" and (m.group(2), m.group(3)) not in tables)))


def _pg_restore(url, dump: Path) -> None:
    uri, env = _libpq(url)
    program = _program("pg_restore", _server_major(url))
    listing = subprocess.run([program, "--list", str(dump)], capture_output=True, text=True, check=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".list") as kept:
        kept.write(_restorable(listing))
        kept.flush()
        _run([program, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
              "--use-list", kept.name, "--dbname", uri, str(dump)], env)


def _require_empty_postgres(url) -> None:
    """Nothing of ours may be there (tables, views, sequences, functions): only what extensions
    brought (PostGIS's spatial_ref_sys, its functions), which the dump re-creates IF NOT EXISTS."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("""
                SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                          AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
                          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                          AND d.objid = c.oid AND d.deptype = 'e'))
                     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
                          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                          AND d.objid = p.oid AND d.deptype = 'e'))""")).scalar()
    finally:
        engine.dispose()
    if found:
        raise BackupError(f"the database {url.database} is not empty ({found} tables, sequences or functions): "
                          "restore into a new one")


def _describe(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
