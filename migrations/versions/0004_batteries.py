"""Battery-swap cabinets can report how many charged batteries they hold.

Revision ID: 0004_batteries
Revises: 0003_service_area_speed
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_batteries"
down_revision = "0003_service_area_speed"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("station", sa.Column("batteries_available", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("station") as batch:
        batch.drop_column("batteries_available")
