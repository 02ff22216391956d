"""Search by name: how many keys hold each trigram, so a query asks its text index for its
rarest trigrams only.

A text index (FTS5, pg_trgm's GIN) reads the whole list of every trigram a query names, and
the search key's common trigrams are in most keys. ``search_trigram`` (per table, the keys
holding each trigram; the row '' holds the number of keys) is filled by ``analyze_search``
after imports, and here for what is stored: on SQLite from FTS5's own vocabulary
(``*_fts_vocab``), on PostgreSQL from a sample.

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
