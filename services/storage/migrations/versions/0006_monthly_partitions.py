"""check_tasks and check_results partitioned by month of created_at (Postgres), for retention

Retention (services/results/retention.py) drops a whole month of tasks and results at once
(DETACH PARTITION CONCURRENTLY + DROP TABLE) instead of deleting millions of rows. On Postgres
both tables become range-partitioned by `created_at`, one partition a month named
`<table>_pYYYY_MM`, covering every month that has rows plus the current month and the two
after it (the retention job keeps making them ahead from then on). Rows are copied over once,
in the migration's transaction: writes to these tables wait until it commits.

What partitioning changes, and why:
- The primary key of a partitioned table must hold the partition key: (id, created_at).
- `check_results.task_id` can no longer be UNIQUE (that too would need created_at, and a resent
  result has its own created_at): it is a plain index now. A result is still stored at most once
  per task: RecordResults reads the task's result under its check's row lock before inserting
  (services/results/store.py), which is what kept it single before; the constraint was a backstop.
- No foreign keys on these two tables: one to a partitioned table would need created_at, and
  dropping a partition that has one locks `checks` ACCESS EXCLUSIVE (every RecordResults would
  wait). Every delete path removes results, tasks and then the check explicitly (DeleteCheck,
  retention), and rows are only written under the check's lock or with the check.

SQLite (the embedded default) keeps its plain tables, keys and constraints: nothing changes there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 20:00:00.000000
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# Months made ahead of the current one (the same as retention.AHEAD_MONTHS).
AHEAD_MONTHS = 2
# (name, columns) of each table's indexes besides its primary key.
INDEXES = {
    "check_tasks": (("idx_tasks_check_id", "check_id"), ("idx_tasks_agent_id", "agent_id"),
                    ("idx_tasks_status_deadline", "status, deadline_at")),
    "check_results": (("idx_results_check_id", "check_id"), ("idx_results_agent_id", "agent_id"),
                      ("idx_results_success", "success")),
}
# 0001's foreign keys and unique constraint (Postgres' default names), restored by the downgrade.
FOREIGN_KEYS = (("check_tasks", "check_tasks_check_id_fkey", "check_id", "checks"),
                ("check_results", "check_results_task_id_fkey", "task_id", "check_tasks"),
                ("check_results", "check_results_check_id_fkey", "check_id", "checks"))


def _month(value: datetime) -> datetime:
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, 1, tzinfo=UTC)


def _next(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def _months(table: str) -> list[datetime]:
    """Every month from the oldest row's to AHEAD_MONTHS past the current one (or the newest row's)."""
    oldest, newest = op.get_bind().execute(sa.text(f"SELECT min(created_at), max(created_at) FROM {table}")).one()
    first = last = _month(datetime.now(UTC))
    for _ in range(AHEAD_MONTHS):
        last = _next(last)
    if oldest is not None:
        first, last = min(first, _month(oldest)), max(last, _month(newest))
    months = [first]
    while months[-1] < last:
        months.append(_next(months[-1]))
    return months


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("check_tasks", "check_results"):
        op.execute(f"CREATE TABLE {table}_new (LIKE {table} INCLUDING DEFAULTS) PARTITION BY RANGE (created_at)")
        for month in _months(table):
            op.execute(f"CREATE TABLE {table}_p{month:%Y_%m} PARTITION OF {table}_new "
                       f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_next(month).isoformat()}')")
        op.execute(f"INSERT INTO {table}_new SELECT * FROM {table}")
    op.execute("DROP TABLE check_results")  # first: it refers to check_tasks
    op.execute("DROP TABLE check_tasks")
    for table in ("check_tasks", "check_results"):
        op.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
        # Indexes after the copy: built once per partition rather than row by row.
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id, created_at)")
        for name, columns in INDEXES[table]:
            op.execute(f"CREATE INDEX {name} ON {table} ({columns})")
    op.execute("CREATE INDEX idx_results_task_id ON check_results (task_id)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("check_tasks", "check_results"):
        op.execute(f"CREATE TABLE {table}_old (LIKE {table} INCLUDING DEFAULTS)")
        op.execute(f"INSERT INTO {table}_old SELECT * FROM {table}")
    op.execute("DROP TABLE check_results")  # with every partition
    op.execute("DROP TABLE check_tasks")
    for table in ("check_tasks", "check_results"):
        op.execute(f"ALTER TABLE {table}_old RENAME TO {table}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id)")
        for name, columns in INDEXES[table]:
            op.execute(f"CREATE INDEX {name} ON {table} ({columns})")
    # Rows the keys would have removed with their check or task (none, unless written by hand).
    op.execute("DELETE FROM check_tasks t WHERE NOT EXISTS (SELECT 1 FROM checks c WHERE c.id = t.check_id)")
    op.execute("DELETE FROM check_results r WHERE NOT EXISTS (SELECT 1 FROM check_tasks t WHERE t.id = r.task_id)")
    op.execute("ALTER TABLE check_results ADD CONSTRAINT uq_results_task_id UNIQUE (task_id)")
    for table, name, column, referred in FOREIGN_KEYS:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
                   f"REFERENCES {referred} (id) ON DELETE CASCADE")
