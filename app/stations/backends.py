"""Pick the store implementation for a database."""
from __future__ import annotations

from sqlalchemy.engine import Connection, Engine

from app.stations.postgis import PostgisStore
from app.stations.sqlite import SqliteStore
from app.stations.store import StationStore


def store_for(bind: Engine | Connection) -> StationStore:
    dialect = bind.dialect.name
    if dialect == "postgresql":
        return PostgisStore(bind)
    if dialect == "sqlite":
        return SqliteStore(bind)
    raise ValueError(f"no station store for {dialect!r} databases (use PostgreSQL/PostGIS or SQLite)")
