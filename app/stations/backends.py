"""Pick the store implementation for a database."""
from __future__ import annotations

from sqlalchemy.engine import Connection, Engine

from app.stations.postgis import PostgisStore
from app.stations.sqlite import SqliteStore
from app.stations.store import StationStore


def store_for(bind: Engine | Connection, reader: Engine | None = None) -> StationStore:
    """The store for ``bind``; ``reader``, if given, is an autocommit engine for reads (or a
    router choosing one per connection: app.replicas.ReadRouter)."""
    dialect = bind.dialect.name
    if dialect == "postgresql":
        return PostgisStore(bind, reader)
    if dialect == "sqlite":
        return SqliteStore(bind, reader)
    raise ValueError(f"no station store for {dialect!r} databases (use PostgreSQL/PostGIS or SQLite)")


def drop_all_tables(bind: Engine | Connection) -> None:
    """Drop every table (and trigger function) the migrations made (tests and benchmarks start
    from nothing).

    PostGIS's own ``spatial_ref_sys`` and the extension itself are left alone.
    """
    with (bind.begin() if isinstance(bind, Engine) else bind.begin_nested()) as conn:
        if conn.dialect.name == "postgresql":
            names = conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND tablename <> 'spatial_ref_sys'"
            ).scalars().all()
            for name in names:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}" CASCADE')
            # Trigger functions outlive the tables their triggers were on.
            functions = conn.exec_driver_sql(
                "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = current_schema() AND p.prorettype = 'trigger'::regtype AND NOT EXISTS"
                " (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"  # an extension's own
            ).scalars().all()
            for signature in functions:
                conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {signature}")
        else:
            # Triggers first: a table's rows go with it, and a trigger could write to a table
            # already dropped (station_search is kept by station's).
            for name in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars().all():
                conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS "{name}"')
            names = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' AND name NOT LIKE '%_rtree_%'"
                " AND name NOT LIKE '%\\_fts\\_%' ESCAPE '\\'"  # FTS5's own tables go with their index
            ).scalars().all()
            virtual = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'"
            ).scalars().all()
            # Tables that point at others go first, and the R*Trees last: dropping a table
            # deletes its rows, which fires the triggers that keep the R*Trees in step.
            names = sorted(names, key=lambda name: bool(conn.exec_driver_sql(
                f"SELECT count(*) FROM pragma_foreign_key_list('{name}')").scalar() == 0))
            for name in [*names, *virtual]:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
