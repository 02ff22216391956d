"""Road networks (one compact graph per mode) and per-station service areas.

Revision ID: 0002_network
Revises: 0001_stations
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0002_network"
down_revision = "0001_stations"
branch_labels = None
depends_on = None


def upgrade():
    dialect = op.get_bind().dialect.name
    pg = dialect == "postgresql"
    stamp = sa.DateTime(timezone=True) if pg else sa.Text()
    now = sa.text("now()") if pg else sa.text("(strftime('%Y-%m-%d %H:%M:%f', 'now'))")
    op.create_table(
        "network",
        sa.Column("mode", sa.Text(), primary_key=True),
        # A new random token per import: workers reload their in-memory graph when it changes.
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("node_count", sa.Integer(), nullable=False),
        sa.Column("segment_count", sa.Integer(), nullable=False),
        sa.Column("road_km", sa.Float(precision=53), nullable=False),
        sa.Column("built_at", stamp, nullable=False, server_default=now),
        sa.Column("graph", sa.LargeBinary(), nullable=False),
    )
    common = [
        sa.Column("station_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("station.id", ondelete="CASCADE"), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("network_token", sa.Text(), nullable=False),
        sa.Column("station_updated_at", stamp, nullable=False),
        sa.Column("area_km2", sa.Float(precision=53), nullable=False),
        sa.Column("road_km", sa.Float(precision=53), nullable=False),
        sa.Column("computed_at", stamp, nullable=False, server_default=now),
    ]
    if pg:
        op.create_table(
            "service_area", *common,
            sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
            sa.PrimaryKeyConstraint("station_id", "mode", "minutes"),
        )
        op.create_index("ix_service_area_geom", "service_area", ["geom"], postgresql_using="gist")
    else:
        op.create_table(
            "service_area",
            sa.Column("id", sa.Integer(), primary_key=True),
            *common,
            sa.Column("geom_wkb", sa.LargeBinary(), nullable=False),
            sa.Column("min_lng", sa.Float(precision=53), nullable=False),
            sa.Column("max_lng", sa.Float(precision=53), nullable=False),
            sa.Column("min_lat", sa.Float(precision=53), nullable=False),
            sa.Column("max_lat", sa.Float(precision=53), nullable=False),
            sa.UniqueConstraint("station_id", "mode", "minutes", name="uq_service_area"),
        )
        op.execute("CREATE VIRTUAL TABLE service_area_rtree USING rtree(id, min_lng, max_lng, min_lat, max_lat)")
        op.execute(
            "CREATE TRIGGER service_area_rtree_insert AFTER INSERT ON service_area BEGIN "
            "INSERT INTO service_area_rtree VALUES (new.id, new.min_lng, new.max_lng, new.min_lat, new.max_lat); END"
        )
        op.execute(
            "CREATE TRIGGER service_area_rtree_update AFTER UPDATE OF min_lng, max_lng, min_lat, max_lat "
            "ON service_area BEGIN UPDATE service_area_rtree SET min_lng = new.min_lng, max_lng = new.max_lng, "
            "min_lat = new.min_lat, max_lat = new.max_lat WHERE id = new.id; END"
        )
        op.execute(
            "CREATE TRIGGER service_area_rtree_delete AFTER DELETE ON service_area BEGIN "
            "DELETE FROM service_area_rtree WHERE id = old.id; END"
        )


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE service_area_rtree")
    op.drop_table("service_area")
    op.drop_table("network")
