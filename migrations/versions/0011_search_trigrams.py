"""Search by name: how many keys hold each trigram, so a query asks its text index for its
rarest trigrams only; and every search key starts with a space.

A text index (FTS5, pg_trgm's GIN) reads the whole list of every trigram a query names, and
the search key's common trigrams are in most keys. ``search_trigram`` (per table, the keys
holding each trigram; the row '' holds the number of keys) is filled by ``analyze_search``
after imports, and here for what is stored: on SQLite from FTS5's own vocabulary
(``*_fts_vocab``), on PostgreSQL from a sample. A key's first form now also follows a space,
so one pattern (a space, then the form's start) finds every form's start.

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


_BATCH = 5_000


def _prefix_keys(conn, table: str) -> None:
    """A space before every key, in batches of ids (row locks held briefly)."""
    last = conn.execute(sa.text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one()
    for start in range(0, last, _BATCH):
        conn.execute(sa.text(f"UPDATE {table} SET search_key = ' ' || search_key"
                             f" WHERE id > :start AND id <= :end AND search_key NOT LIKE ' %'"),
                     {"start": start, "end": start + _BATCH})


def upgrade():
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("SET LOCAL statement_timeout = 0")  # a bulk change, not a web request
    for table in ("station", "place"):
        _prefix_keys(conn, table)
    op.create_table(
        "search_trigram",
        sa.Column("tbl", sa.Text(), primary_key=True),
        sa.Column("trigram", sa.Text(), primary_key=True),
        sa.Column("docs", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    )
    if conn.dialect.name != "postgresql":
        for table in ("station", "place"):
            op.execute(f"CREATE VIRTUAL TABLE {table}_fts_vocab USING fts5vocab({table}_fts, row)")
    # The counts themselves: the store's analyze_search, as after an import.
    from app.stations.backends import store_for

    store_for(conn).analyze_search()


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        for table in ("station", "place"):
            op.execute(f"DROP TABLE {table}_fts_vocab")
    op.drop_table("search_trigram")
    for table in ("station", "place"):
        op.execute(f"UPDATE {table} SET search_key = substr(search_key, 2) WHERE search_key LIKE ' %'")
