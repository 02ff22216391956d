"""Which (kind, amenities) combinations active stations have, kept by triggers.

A nearest search with a filter that no active station matches would otherwise walk
the spatial index through every station within the search radius before it could
say "none". This small table answers that at once.

Revision ID: 0005_station_signature
Revises: 0004_batteries
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_station_signature"
down_revision = "0004_batteries"
branch_labels = None
depends_on = None

_BACKFILL = (
    "INSERT INTO station_signature (kind, amenities_yes, active)"
    " SELECT kind, amenities_yes, count(*) FROM station WHERE status = 'active' GROUP BY kind, amenities_yes"
)

# PostgreSQL: one statement-level trigger per event, reading the statement's transition
# tables, so a million-row import updates the table once, not a million times.
# Writers take one advisory lock for the table (held to commit) so two imports cannot
# deadlock on its rows.
_PG_DELTA = """
CREATE OR REPLACE FUNCTION station_signature_{op}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('yizhan:station_signature', 0));
  INSERT INTO station_signature (kind, amenities_yes, active)
  SELECT kind, amenities_yes, sum(delta) FROM ({rows}) AS d
  GROUP BY kind, amenities_yes HAVING sum(delta) <> 0 ORDER BY kind, amenities_yes
  ON CONFLICT (kind, amenities_yes) DO UPDATE SET active = station_signature.active + EXCLUDED.active;
  RETURN NULL;
END $$
"""
_NEW = "SELECT kind, amenities_yes, 1 AS delta FROM new_rows WHERE status = 'active'"
_OLD = "SELECT kind, amenities_yes, -1 AS delta FROM old_rows WHERE status = 'active'"
_PG_TRIGGERS = {
    "insert": (_NEW, "INSERT", "NEW TABLE AS new_rows"),
    "update": (f"{_NEW} UNION ALL {_OLD}", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    "delete": (_OLD, "DELETE", "OLD TABLE AS old_rows"),
}

_SQLITE_ADD = (
    "INSERT INTO station_signature (kind, amenities_yes, active) SELECT new.kind, new.amenities_yes, 1"
    " WHERE new.status = 'active'"
    " ON CONFLICT (kind, amenities_yes) DO UPDATE SET active = active + 1;"
)
_SQLITE_REMOVE = (
    "UPDATE station_signature SET active = active - 1"
    " WHERE old.status = 'active' AND kind = old.kind AND amenities_yes = old.amenities_yes;"
)


def upgrade():
    op.create_table(
        "station_signature",
        sa.Column("kind", sa.Text(), primary_key=True),
        sa.Column("amenities_yes", sa.Integer(), primary_key=True),
        sa.Column("active", sa.BigInteger(), nullable=False),
    )
    op.execute(_BACKFILL)
    if op.get_bind().dialect.name == "postgresql":
        for name, (rows, event, referencing) in _PG_TRIGGERS.items():
            op.execute(_PG_DELTA.format(op=name, rows=rows))
            op.execute(
                f"CREATE TRIGGER station_signature_{name} AFTER {event} ON station"
                f" REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION station_signature_{name}()"
            )
    else:
        op.execute(f"CREATE TRIGGER station_signature_insert AFTER INSERT ON station BEGIN {_SQLITE_ADD} END")
        op.execute(f"CREATE TRIGGER station_signature_delete AFTER DELETE ON station BEGIN {_SQLITE_REMOVE} END")
        op.execute(
            "CREATE TRIGGER station_signature_update AFTER UPDATE OF kind, amenities_yes, status ON station"
            f" BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END"
        )


def downgrade():
    for name in _PG_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS station_signature_{name}" + (
            " ON station" if op.get_bind().dialect.name == "postgresql" else ""))
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS station_signature_{name}()")
    op.drop_table("station_signature")
