"""Search by name: how many keys hold each trigram, so a query asks its text index for its
rarest trigrams only; on SQLite, the active stations' keys by map cell.

A text index (FTS5, pg_trgm's GIN) reads the whole list of every trigram a query names, and
the search key's common trigrams are in most keys. ``search_trigram`` (per table, the keys
holding each trigram; the row '' holds the number of keys) and ``search_sample`` (a few
thousand active stations' keys, by which a pattern's share is judged) are filled by
``analyze_search`` after imports, and here for what is stored: the counts on SQLite from FTS5's
own vocabulary (``*_fts_vocab``), on PostgreSQL from a sample.

``station_search`` (SQLite): each active station's point and key (after a space), clustered by
a 0.01° map cell (``WITHOUT ROWID``, primary key (cell, id)), kept in step by triggers. A
search around a point reads the keys of a few runs of neighbouring cells instead of every
station row of the box one by one (measured 2x faster at 1M). The cell formula is
written out in each statement below; app.stations.sqlite.search_cell must agree (tested).

Revision ID: 0011_search_trigrams
Revises: 0010_search
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_search_trigrams"
down_revision = "0010_search"
branch_labels = None
depends_on = None


def upgrade():
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("SET LOCAL statement_timeout = 0")  # counting reads the whole table
    op.create_table(
        "search_trigram",
        sa.Column("tbl", sa.Text(), primary_key=True),
        sa.Column("trigram", sa.Text(), primary_key=True),
        sa.Column("docs", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    )
    # Active stations' keys at random: how common a pattern is, judged by the share holding it.
    op.create_table("search_sample", sa.Column("search_key", sa.Text(), nullable=False))
    if conn.dialect.name != "postgresql":
        op.execute("CREATE VIRTUAL TABLE station_fts_vocab USING fts5vocab(station_fts, row)")
        op.execute("CREATE VIRTUAL TABLE place_fts_vocab USING fts5vocab(place_fts, row)")
        # The cell of a point: CAST((lat + 90) * 100 AS INTEGER) * 36000 + CAST((lng + 180) * 100 AS
        # INTEGER) (0.01° rows of 36,000 cells), written out in each statement so that each is plain
        # SQL the release's migration rule can read (tests/test_migrations_rule.py).
        op.execute("CREATE TABLE station_search (cell INTEGER NOT NULL, id INTEGER NOT NULL, lat REAL NOT NULL,"
                   " lng REAL NOT NULL, search_key TEXT NOT NULL, PRIMARY KEY (cell, id)) WITHOUT ROWID")
        op.execute("INSERT INTO station_search SELECT CAST((lat + 90) * 100 AS INTEGER) * 36000"
                   " + CAST((lng + 180) * 100 AS INTEGER), id, lat, lng, ' ' || search_key"
                   " FROM station WHERE status = 'active' ORDER BY 1, 2")
        op.execute("CREATE TRIGGER station_search_insert AFTER INSERT ON station WHEN new.status = 'active' BEGIN"
                   " INSERT INTO station_search VALUES (CAST((new.lat + 90) * 100 AS INTEGER) * 36000"
                   " + CAST((new.lng + 180) * 100 AS INTEGER), new.id, new.lat, new.lng, ' ' || new.search_key); END")
        op.execute("CREATE TRIGGER station_search_update AFTER UPDATE OF lat, lng, status, search_key ON station"
                   " BEGIN DELETE FROM station_search WHERE cell = CAST((old.lat + 90) * 100 AS INTEGER) * 36000"
                   " + CAST((old.lng + 180) * 100 AS INTEGER) AND id = old.id;"
                   " INSERT INTO station_search SELECT CAST((new.lat + 90) * 100 AS INTEGER) * 36000"
                   " + CAST((new.lng + 180) * 100 AS INTEGER), new.id, new.lat, new.lng, ' ' || new.search_key"
                   " WHERE new.status = 'active'; END")
        op.execute("CREATE TRIGGER station_search_delete AFTER DELETE ON station BEGIN"
                   " DELETE FROM station_search WHERE cell = CAST((old.lat + 90) * 100 AS INTEGER) * 36000"
                   " + CAST((old.lng + 180) * 100 AS INTEGER) AND id = old.id; END")
    # The counts themselves: the store's analyze_search, as after an import.
    from app.stations.backends import store_for

    store_for(conn).analyze_search()


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        for statement in ("DROP TRIGGER station_search_insert", "DROP TRIGGER station_search_update",
                          "DROP TRIGGER station_search_delete", "DROP TABLE station_search",
                          "DROP TABLE station_fts_vocab", "DROP TABLE place_fts_vocab"):
            op.execute(statement)
    op.drop_table("search_sample")
    op.drop_table("search_trigram")
