"""agents: latitude and longitude (decimal degrees, nullable) for the UI's map

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 20:10:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("latitude", sa.Float(), nullable=True))
        batch.add_column(sa.Column("longitude", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("longitude")
        batch.drop_column("latitude")
