"""monitors: monitors, monitor_runs, monitor_events, monitor_uptime; checks.monitor_id and checks.monitor_run

See services/results/monitormodels.py for what each table is for.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 23:00:00.000000
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("check_types", JSONType, nullable=False),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("for_runs", sa.Integer(), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=False),
        sa.Column("webhook_secret", sa.String(128), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("status_slug", sa.String(64), nullable=True),
        sa.Column("created_by_key_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_seq", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failing_runs", sa.Integer(), nullable=False),
        sa.Column("last_evaluated_seq", sa.Integer(), nullable=False),
    )
    op.create_index("idx_monitors_due", "monitors", ["paused", "next_run_at"])
    op.create_index("idx_monitors_key_created", "monitors", ["created_by_key_id", "created_at"])
    op.create_index("idx_monitors_slug", "monitors", ["status_slug"])

    op.create_table(
        "monitor_runs",
        sa.Column("monitor_id", sa.Uuid(), sa.ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("check_id", sa.Uuid(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("agents_total", sa.Integer(), nullable=False),
        sa.Column("agents_failing", sa.Integer(), nullable=False),
        sa.Column("agents", JSONType, nullable=False),
        sa.Column("state_after", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evaluated", sa.Boolean(), nullable=False),
    )
    op.create_index("idx_monitor_runs_check", "monitor_runs", ["check_id"], unique=True)
    op.create_index("idx_monitor_runs_unevaluated", "monitor_runs", ["evaluated", "scheduled_at"])
    op.create_index("idx_monitor_runs_monitor_scheduled", "monitor_runs", ["monitor_id", "scheduled_at"])

    op.create_table(
        "monitor_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("monitor_id", sa.Uuid(), sa.ForeignKey("monitors.id", ondelete="CASCADE"), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_seq", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.Uuid(), nullable=True),
        sa.Column("failing_agents", JSONType, nullable=False),
        sa.Column("notification", sa.String(16), nullable=False),
        sa.Column("payload", JSONType, nullable=True),
        sa.Column("delivery_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_delivery_error", sa.Text(), nullable=False),
    )
    op.create_index("idx_monitor_events_monitor_at", "monitor_events", ["monitor_id", "at"])
    op.create_index("idx_monitor_events_outbox", "monitor_events", ["notification", "next_attempt_at"])

    op.create_table(
        "monitor_uptime",
        sa.Column("monitor_id", sa.Uuid(), sa.ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("up", sa.Integer(), nullable=False),
        sa.Column("degraded", sa.Integer(), nullable=False),
        sa.Column("failing", sa.Integer(), nullable=False),
    )

    with op.batch_alter_table("checks") as batch:
        batch.add_column(sa.Column("monitor_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("monitor_run", sa.Integer(), nullable=True))
    op.create_index("idx_checks_monitor_run", "checks", ["monitor_id", "monitor_run"], unique=True)


def downgrade() -> None:
    op.drop_index("idx_checks_monitor_run", table_name="checks")
    with op.batch_alter_table("checks") as batch:
        batch.drop_column("monitor_run")
        batch.drop_column("monitor_id")
    op.drop_table("monitor_uptime")
    op.drop_table("monitor_events")
    op.drop_table("monitor_runs")
    op.drop_table("monitors")
