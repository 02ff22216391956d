"""Service areas remember the speed they were computed at, so a new speed recomputes them.

Revision ID: 0003_service_area_speed
Revises: 0002_network
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_service_area_speed"
down_revision = "0002_network"
branch_labels = None
depends_on = None


def upgrade():
    # Existing rows get NULL, which never matches a speed: they are recomputed on the next run.
    op.add_column("service_area", sa.Column("speed_kmh", sa.Float(precision=53), nullable=True))


def downgrade():
    with op.batch_alter_table("service_area") as batch:
        batch.drop_column("speed_kmh")
