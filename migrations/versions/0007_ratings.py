"""Satisfaction (issue #9): station ratings, and the tracking page's questionnaire.

Ratings: one row per rating, with its station's running totals on the station row so that
nearest and detail read them without a join.

A device's rating replaces its earlier one within 12 hours and is a new one after that
(app.stations.ratings), so (station_id, device_hash) is indexed, not unique: a device that rates
a station every day has a row per day. The device is the SHA-256 of a random id kept in a signed
cookie (app.device); no address is stored.

Check-ins: "worked / closed / not found / info wrong" in one tap, one row each; "closed" or "not
found" from several devices within a day opens a work order (app.ops.checkins).

Questionnaire: once a work order is fixed or closed, its tracking page asks 满意 / 基本满意 /
不满意 about the handling; one answer per device per work order (unique), kept with the work order.

Revision ID: 0007_ratings
Revises: 0006_operations
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

# Every rating updates its station's row. 0005's statement trigger took the signature table's
# advisory lock for any update of station, held to commit, so ratings would queue behind a
# running import (and time out). Now it returns at once when no row changed kind, amenities or
# status; what it does otherwise is 0005's.
_PG_SIGNATURE_UPDATE = """
CREATE OR REPLACE FUNCTION station_signature_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  {guard}
  PERFORM pg_advisory_xact_lock(hashtextextended('yizhan:station_signature', 0));
  INSERT INTO station_signature (kind, amenities_yes, active)
  SELECT kind, amenities_yes, sum(delta) FROM (
    SELECT kind, amenities_yes, 1 AS delta FROM new_rows WHERE status = 'active'
    UNION ALL SELECT kind, amenities_yes, -1 AS delta FROM old_rows WHERE status = 'active'
  ) AS d
  GROUP BY kind, amenities_yes HAVING sum(delta) <> 0 ORDER BY kind, amenities_yes
  ON CONFLICT (kind, amenities_yes) DO UPDATE SET active = station_signature.active + EXCLUDED.active;
  RETURN NULL;
END $$
"""
_GUARD = """IF NOT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE (n.kind, n.amenities_yes, n.status) IS DISTINCT FROM (o.kind, o.amenities_yes, o.status)) THEN
    RETURN NULL;
  END IF;"""

revision = "0007_ratings"
down_revision = "0006_operations"
branch_labels = None
depends_on = None


def upgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    stamp = sa.DateTime(timezone=True) if pg else sa.Text()
    key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    if pg:
        op.execute(_PG_SIGNATURE_UPDATE.format(guard=_GUARD))
    with op.batch_alter_table("station") as batch:
        batch.add_column(sa.Column("rating_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("rating_sum", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "station_rating",
        sa.Column("id", key, primary_key=True),
        sa.Column("station_id", key, sa.ForeignKey("station.id", ondelete="CASCADE"), nullable=False),
        sa.Column("device_hash", sa.Text(), nullable=False),  # SHA-256 hex of the device cookie's id
        sa.Column("stars", sa.SmallInteger(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False, server_default="[]"),  # JSON list of tag ids
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("updated_at", stamp, nullable=False),
        sa.CheckConstraint("stars BETWEEN 1 AND 5", name="ck_station_rating_stars"),
        **({} if pg else {"sqlite_autoincrement": True}),
    )
    op.create_index("ix_station_rating_device", "station_rating", ["station_id", "device_hash", "created_at"])
    op.create_table(
        "station_checkin",
        sa.Column("id", key, primary_key=True),
        sa.Column("station_id", key, sa.ForeignKey("station.id", ondelete="CASCADE"), nullable=False),
        sa.Column("device_hash", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("created_at", stamp, nullable=False),
        sa.CheckConstraint("outcome IN ('worked', 'closed', 'not_found', 'info_wrong')",
                           name="ck_station_checkin_outcome"),
        **({} if pg else {"sqlite_autoincrement": True}),
    )
    op.create_index("ix_station_checkin_recent", "station_checkin", ["station_id", "outcome", "created_at"])
    op.create_table(
        "work_order_feedback",
        sa.Column("id", key, primary_key=True),
        sa.Column("work_order_id", key, sa.ForeignKey("work_order.id", ondelete="CASCADE"), nullable=False),
        sa.Column("device_hash", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("created_at", stamp, nullable=False),
        sa.UniqueConstraint("work_order_id", "device_hash", name="uq_work_order_feedback_device"),
        sa.CheckConstraint("answer IN ('satisfied', 'basically_satisfied', 'dissatisfied')",
                           name="ck_work_order_feedback_answer"),
        **({} if pg else {"sqlite_autoincrement": True}),
    )


def downgrade():
    op.drop_table("work_order_feedback")
    op.drop_index("ix_station_checkin_recent", table_name="station_checkin")
    op.drop_table("station_checkin")
    op.drop_index("ix_station_rating_device", table_name="station_rating")
    op.drop_table("station_rating")
    with op.batch_alter_table("station") as batch:
        batch.drop_column("rating_sum")
        batch.drop_column("rating_count")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_SIGNATURE_UPDATE.format(guard=""))
