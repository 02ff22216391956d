"""Stations, with a spatial index: GiST on PostGIS, R*Tree on SQLite.

Revision ID: 0001_stations
Revises:
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0001_stations"
down_revision = None
branch_labels = None
depends_on = None


def _columns(dialect: str) -> list:
    if dialect == "postgresql":
        now = sa.text("now()")
        stamp = sa.DateTime(timezone=True)
    else:
        now = sa.text("(strftime('%Y-%m-%d %H:%M:%f', 'now'))")
        stamp = sa.Text()
    return [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(precision=53), nullable=False),
        sa.Column("lng", sa.Float(precision=53), nullable=False),
        sa.Column("amenities_yes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("amenities_no", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("opening_hours", sa.Text()),
        sa.Column("address", sa.Text()),
        sa.Column("operator", sa.Text()),
        sa.Column("access", sa.Text(), nullable=False, server_default="public"),
        sa.Column("fee", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False, server_default="active"),
        sa.Column("timezone", sa.Text(), nullable=False, server_default="Asia/Shanghai"),
        sa.Column("created_at", stamp, nullable=False, server_default=now),
        sa.Column("updated_at", stamp, nullable=False, server_default=now),
        sa.UniqueConstraint("source", "source_id", name="uq_station_source"),
        sa.CheckConstraint("lat BETWEEN -90 AND 90 AND lng BETWEEN -180 AND 180", name="ck_station_coords"),
        sa.CheckConstraint("status IN ('active', 'closed', 'removed')", name="ck_station_status"),
    ]


def upgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        op.create_table(
            "station",
            *_columns(dialect),
            # Derived from lat/lng so the two can never disagree.
            sa.Column(
                "geom",
                Geometry("POINT", srid=4326, spatial_index=False),
                sa.Computed("ST_SetSRID(ST_MakePoint(lng, lat), 4326)", persisted=True),
            ),
        )
        op.create_index("ix_station_geom", "station", ["geom"], postgresql_using="gist")
    else:
        # AUTOINCREMENT: ids are printed on QR codes and must never be reused.
        op.create_table("station", *_columns(dialect), sqlite_autoincrement=True)
        op.execute(
            "CREATE VIRTUAL TABLE station_rtree USING rtree(id, min_lng, max_lng, min_lat, max_lat)"
        )
        op.execute(
            "CREATE TRIGGER station_rtree_insert AFTER INSERT ON station BEGIN "
            "INSERT INTO station_rtree VALUES (new.id, new.lng, new.lng, new.lat, new.lat); END"
        )
        op.execute(
            "CREATE TRIGGER station_rtree_update AFTER UPDATE OF lat, lng ON station BEGIN "
            "UPDATE station_rtree SET min_lng = new.lng, max_lng = new.lng, "
            "min_lat = new.lat, max_lat = new.lat WHERE id = new.id; END"
        )
        op.execute(
            "CREATE TRIGGER station_rtree_delete AFTER DELETE ON station BEGIN "
            "DELETE FROM station_rtree WHERE id = old.id; END"
        )
    op.create_index("ix_station_kind", "station", ["kind"])


def downgrade():
    op.drop_index("ix_station_kind", table_name="station")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE station_rtree")
    op.drop_table("station")
