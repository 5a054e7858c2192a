"""api keys (the seed's users) and who created each check

`api_keys`: one row per key the admin made; only the SHA-256 of the key is stored.
`checks.created_by_key_id`: the key that created a check (NULL: anonymous; the creator's
address is the existing `checks.client_ip`). Indexed with `created_at` for listing a key's
checks newest first, and `client_ip` likewise for an anonymous caller's last 24 hours.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 20:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("quota_per_hour", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("checks") as batch:
        batch.add_column(sa.Column("created_by_key_id", sa.Uuid(), nullable=True))
    op.create_index("idx_checks_key_created", "checks", ["created_by_key_id", "created_at"])
    op.create_index("idx_checks_ip_created", "checks", ["client_ip", "created_at"])


def downgrade() -> None:
    op.drop_index("idx_checks_ip_created", table_name="checks")
    op.drop_index("idx_checks_key_created", table_name="checks")
    with op.batch_alter_table("checks") as batch:
        batch.drop_column("created_by_key_id")
    op.drop_table("api_keys")
