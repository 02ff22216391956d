"""Sensors (issue #9 §4): people counters and NH3/H2S sensors bound to stations, their readings,
and per station the cleaning rule with its running counters.

- ``sensor_device``: one row per device; only the SHA-256 of its token is kept. ``last_seen_at``
  (when a reading of it was last applied) and ``offline_since`` (set by ``ops tick`` when it has
  been silent too long, cleared when it speaks again).
- ``sensor_reading``: every applied reading; the primary key (device, ts) makes a redelivered or
  duplicated reading a no-op (INSERT ... ON CONFLICT DO NOTHING on both stores).
- ``station_cleaning``: the station's rule (visitor threshold, toilet grade for the gas limits,
  how long a device may be silent) and the counters a reading updates in place (visitors since
  the last cleaning, today's visitors, the latest gas values, the open cleaning work order), so
  a reading is one small transaction and never a count over the readings.

Revision ID: 0009_sensors
Revises: 0008_live_status
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_sensors"
down_revision = "0008_live_status"
branch_labels = None
depends_on = None

GRADES = ("class1", "class2", "class3")  # app.sensors.rules.GRADES (一类, 二类, 三类)


def upgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    stamp = sa.DateTime(timezone=True) if pg else sa.Text()
    key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "sensor_device",
        sa.Column("device_id", sa.Text(), primary_key=True),
        sa.Column("station_id", key, sa.ForeignKey("station.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("token_hash", sa.Text(), nullable=False, unique=True),  # SHA-256 hex of the device token
        sa.Column("registered_at", stamp, nullable=False),
        sa.Column("last_seen_at", stamp),
        sa.Column("offline_since", stamp),
    )
    op.create_table(
        "sensor_reading",
        sa.Column("device_id", sa.Text(), sa.ForeignKey("sensor_device.device_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("ts", stamp, primary_key=True),
        sa.Column("people_in", sa.Integer(), nullable=False),
        sa.Column("nh3", sa.Float(precision=53)),  # mg/m³
        sa.Column("h2s", sa.Float(precision=53)),  # mg/m³
        sa.Column("received_at", stamp, nullable=False),
        sa.CheckConstraint("people_in >= 0 AND (nh3 IS NULL OR nh3 >= 0) AND (h2s IS NULL OR h2s >= 0)",
                           name="ck_sensor_reading_values"),
    )
    op.create_table(
        "station_cleaning",
        sa.Column("station_id", key, sa.ForeignKey("station.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("visitor_threshold", sa.Integer(), nullable=False),
        sa.Column("grade", sa.Text(), nullable=False),
        sa.Column("offline_after_s", sa.Integer(), nullable=False),
        sa.Column("visitors_since_cleaning", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("visitors_day", sa.Text()),  # the local date (YYYY-MM-DD) visitors_today counts
        sa.Column("visitors_today", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("nh3_latest", sa.Float(precision=53)),
        sa.Column("h2s_latest", sa.Float(precision=53)),
        sa.Column("last_cleaned_at", stamp),
        sa.Column("cleaning_work_order_id", key, sa.ForeignKey("work_order.id")),
        sa.CheckConstraint("visitor_threshold > 0 AND offline_after_s > 0", name="ck_station_cleaning_limits"),
        sa.CheckConstraint(f"grade IN ({', '.join(repr(g) for g in GRADES)})", name="ck_station_cleaning_grade"),
    )


def downgrade():
    op.drop_table("station_cleaning")
    op.drop_table("sensor_reading")
    op.drop_table("sensor_device")
