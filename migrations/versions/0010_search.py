"""Search by name (issue #10): stations' search key, the places of the OSM extract, and their indexes.

- ``station.search_key``: the indexed search key of a station's name, address and operator
  (app.search.text; written by every import, filled here for the stations already stored).
- ``place``: named streets (with their line), squares, neighbourhoods and landmarks, replaced
  as a whole by each network import.
- Indexes on the search keys: PostgreSQL ``pg_trgm`` GIN; SQLite FTS5 tables with the
  ``trigram`` tokenizer, as external-content tables kept in step by triggers.

Revision ID: 0010_search
Revises: 0009_sensors
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

from app.search.text import search_key

revision = "0010_search"
down_revision = "0009_sensors"
branch_labels = None
depends_on = None

_BACKFILL_BATCH = 5000


def _fts(table: str) -> list[str]:
    """An FTS5 trigram index of ``table``.search_key and the triggers that keep it in step."""
    fts = f"{table}_fts"
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5(search_key, content='{table}', content_rowid='id',"
        " tokenize='trigram')",
        f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN"
        f" INSERT INTO {fts}(rowid, search_key) VALUES (new.id, new.search_key); END",
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN"
        f" INSERT INTO {fts}({fts}, rowid, search_key) VALUES ('delete', old.id, old.search_key); END",
        f"CREATE TRIGGER {fts}_update AFTER UPDATE OF search_key ON {table} BEGIN"
        f" INSERT INTO {fts}({fts}, rowid, search_key) VALUES ('delete', old.id, old.search_key);"
        f" INSERT INTO {fts}(rowid, search_key) VALUES (new.id, new.search_key); END",
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
    ]


def _backfill_station_keys(conn) -> None:
    after = 0
    while True:
        rows = conn.execute(sa.text(
            "SELECT id, name, address, operator FROM station WHERE id > :after ORDER BY id LIMIT :n"),
            {"after": after, "n": _BACKFILL_BATCH}).all()
        if not rows:
            return
        conn.execute(sa.text("UPDATE station SET search_key = :key WHERE id = :id"),
                     [{"id": r.id, "key": search_key(r.name, r.address, r.operator)} for r in rows])
        after = rows[-1].id


def upgrade():
    conn = op.get_bind()
    pg = conn.dialect.name == "postgresql"
    key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    # Filled just below; the default only serves the rows while the column is added.
    op.add_column("station", sa.Column("search_key", sa.Text(), nullable=False, server_default=""))
    _backfill_station_keys(conn)
    op.create_table(
        "place",
        sa.Column("id", key, primary_key=True, autoincrement=True),
        sa.Column("osm_id", sa.Text(), nullable=False, unique=True),  # e.g. way/123, or street/<name> for a street
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(precision=53), nullable=False),
        sa.Column("lng", sa.Float(precision=53), nullable=False),
        sa.Column("line_wkb", sa.LargeBinary()),  # a street's (multi)line, WKB in lng/lat
        sa.Column("search_key", sa.Text(), nullable=False),
        sa.CheckConstraint("type IN ('street', 'place')", name="ck_place_type"),
        sa.CheckConstraint("lat BETWEEN -90 AND 90 AND lng BETWEEN -180 AND 180", name="ck_place_coords"),
        sqlite_autoincrement=True,
    )
    if pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_station_search_key ON station USING gin (search_key gin_trgm_ops)")
        op.execute("CREATE INDEX ix_place_search_key ON place USING gin (search_key gin_trgm_ops)")
    else:
        for statement in _fts("station") + _fts("place"):
            op.execute(statement)


def downgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("DROP INDEX ix_station_search_key")
    else:
        for table in ("station", "place"):
            for trigger in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER {table}_fts_{trigger}")
            op.execute(f"DROP TABLE {table}_fts")
    op.drop_table("place")
    op.drop_column("station", "search_key")
