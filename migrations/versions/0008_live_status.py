"""Live operator feeds (issue #9 §3): a cabinet's or charging point's last pushed or polled status.

The status lives on the station row (``live_*``), like the rating totals: every search reads it
without a join. A push is a conditional UPDATE of that row (applied only when its
``last_reported`` is newer than the stored one), so replays and out-of-order updates are ignored
atomically on both stores. Counts are unindexed columns: on PostGIS such an update can be HOT
and never touches the GiST index.

``ix_station_source_id``: an operator addresses its cabinets by their source id
(app.stations.live); without the index each push would read all of the operator's stations.

``operator_feed``: an operator's published GBFS feed that Yizhan polls (app.ops.feeds), with its
backoff state and counters.

Revision ID: 0008_live_status
Revises: 0007_ratings
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_live_status"
down_revision = "0007_ratings"
branch_labels = None
depends_on = None


def upgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    stamp = sa.DateTime(timezone=True) if pg else sa.Text()
    key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    with op.batch_alter_table("station") as batch:
        batch.add_column(sa.Column("live_reported_at", stamp))
        batch.add_column(sa.Column("live_batteries", sa.Integer()))
        batch.add_column(sa.Column("live_battery_types", sa.Text()))  # JSON [{"battery_type", "count"}]
        batch.add_column(sa.Column("live_docks", sa.Integer()))
        batch.add_column(sa.Column("live_installed", sa.Boolean()))
        batch.add_column(sa.Column("live_renting", sa.Boolean()))
        batch.add_column(sa.Column("live_connectors", sa.Text()))  # JSON [{"id", "status"}] (OCPI)
    op.create_index("ix_station_source_id", "station", ["source_id"])
    op.create_table(
        "operator_feed",
        sa.Column("organisation_id", key, sa.ForeignKey("organisation.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),  # the operator's gbfs.json
        sa.Column("next_poll_at", stamp, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),  # in a row, for the backoff
        sa.Column("last_polled_at", stamp),
        sa.Column("last_error", sa.Text()),
        sa.Column("applied_total", key, nullable=False, server_default="0"),
        sa.Column("ignored_total", key, nullable=False, server_default="0"),
        sa.Column("rejected_total", key, nullable=False, server_default="0"),
    )


def downgrade():
    op.drop_table("operator_feed")
    op.drop_index("ix_station_source_id", table_name="station")
    with op.batch_alter_table("station") as batch:
        for name in ("live_connectors", "live_renting", "live_installed", "live_docks", "live_battery_types",
                     "live_batteries", "live_reported_at"):
            batch.drop_column(name)
