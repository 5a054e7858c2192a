"""checks.tasks_total / tasks_open / tasks_produced: each check's task counts on its row, kept by triggers

A RecordResults write needs each check's number of tasks, of those still open (pending or
running) and of those that ended with their result (completed or failed; the rest are
timed_out): to end a check with its last task, and for the progress counts of live events.
It counted every task of its checks under their locks (a batch of 500 results of 40 checks of
1,000 tasks: 21-36 ms of Postgres, on the critical path of ingestion, issue 17). Now the
counts are columns of the check, read with its lock.

They are kept by triggers on check_tasks, in the transaction of the statement that changes a
task, whatever writes it: this release's code, the previous release's pods still running
during a rolling upgrade (which know nothing of the columns), a fix by hand. Postgres: one
AFTER ... FOR EACH STATEMENT trigger per event with transition tables (one UPDATE of the
changed checks per statement, not one per task row; statement triggers on the partitioned
check_tasks see the rows of every partition). SQLite: row triggers (one UPDATE per task
row, in process). A partition dropped whole by retention fires nothing: its checks are
deleted right after (services/results/retention.py).

The backfill counts every check's tasks once, in the migration's transaction: creating the
triggers locks check_tasks against writes (SHARE ROW EXCLUSIVE) until it commits, so no task
changes between the count and the triggers taking over. Adding the columns with a constant
default rewrites nothing (Postgres 11+); the backfill updates each check that has tasks.
Writes to checks and tasks wait until it commits (like 0006's copy).

A later migration that rebuilds check_tasks (batch mode on SQLite copies the table, and drops
its triggers with it) must create the triggers again: the statements are below.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 03:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

COLUMNS = ("tasks_total", "tasks_open", "tasks_produced")
OPEN = "('pending', 'running')"
PRODUCED = "('completed', 'failed')"

# Postgres: a statement's changed tasks, counted by check: + the new rows, - the old ones.
_PG_FUNCTION = f"""
CREATE FUNCTION check_tasks_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE checks SET tasks_total = checks.tasks_total + d.total, tasks_open = checks.tasks_open + d.open,
                          tasks_produced = checks.tasks_produced + d.produced
        FROM (SELECT check_id, count(*) AS total, count(*) FILTER (WHERE status IN {OPEN}) AS open,
                     count(*) FILTER (WHERE status IN {PRODUCED}) AS produced
              FROM new_tasks GROUP BY check_id) d
        WHERE checks.id = d.check_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE checks SET tasks_total = checks.tasks_total - d.total, tasks_open = checks.tasks_open - d.open,
                          tasks_produced = checks.tasks_produced - d.produced
        FROM (SELECT check_id, count(*) AS total, count(*) FILTER (WHERE status IN {OPEN}) AS open,
                     count(*) FILTER (WHERE status IN {PRODUCED}) AS produced
              FROM old_tasks GROUP BY check_id) d
        WHERE checks.id = d.check_id;
    ELSE
        UPDATE checks SET tasks_total = checks.tasks_total + d.total,
                          tasks_open = checks.tasks_open + coalesce(d.open, 0),
                          tasks_produced = checks.tasks_produced + coalesce(d.produced, 0)
        FROM (SELECT check_id, sum(n) AS total, sum(n) FILTER (WHERE status IN {OPEN}) AS open,
                     sum(n) FILTER (WHERE status IN {PRODUCED}) AS produced
              FROM (SELECT check_id, status, 1 AS n FROM new_tasks
                    UNION ALL SELECT check_id, status, -1 FROM old_tasks) x
              GROUP BY check_id) d
        WHERE checks.id = d.check_id
          AND (d.total <> 0 OR coalesce(d.open, 0) <> 0 OR coalesce(d.produced, 0) <> 0);
    END IF;
    RETURN NULL;
END
$$
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER check_tasks_counted_insert AFTER INSERT ON check_tasks "
    "REFERENCING NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION check_tasks_count()",
    "CREATE TRIGGER check_tasks_counted_update AFTER UPDATE ON check_tasks "
    "REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION check_tasks_count()",
    "CREATE TRIGGER check_tasks_counted_delete AFTER DELETE ON check_tasks "
    "REFERENCING OLD TABLE AS old_tasks FOR EACH STATEMENT EXECUTE FUNCTION check_tasks_count()",
)


def _sqlite_delta(row: str, sign: str) -> str:
    return (f"UPDATE checks SET tasks_total = tasks_total {sign} 1, "
            f"tasks_open = tasks_open {sign} ({row}.status IN {OPEN}), "
            f"tasks_produced = tasks_produced {sign} ({row}.status IN {PRODUCED}) WHERE id = {row}.check_id;")


_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER check_tasks_counted_insert AFTER INSERT ON check_tasks BEGIN {_sqlite_delta('NEW', '+')} END",
    "CREATE TRIGGER check_tasks_counted_update AFTER UPDATE OF status, check_id ON check_tasks BEGIN "
    f"{_sqlite_delta('OLD', '-')} {_sqlite_delta('NEW', '+')} END",
    f"CREATE TRIGGER check_tasks_counted_delete AFTER DELETE ON check_tasks BEGIN {_sqlite_delta('OLD', '-')} END",
)
TRIGGERS = ("check_tasks_counted_insert", "check_tasks_counted_update", "check_tasks_counted_delete")

_BACKFILL_PG = (
    "UPDATE checks SET tasks_total = n.total, tasks_open = n.open, tasks_produced = n.produced "
    f"FROM (SELECT check_id, count(*) AS total, count(*) FILTER (WHERE status IN {OPEN}) AS open, "
    f"count(*) FILTER (WHERE status IN {PRODUCED}) AS produced FROM check_tasks GROUP BY check_id) n "
    "WHERE checks.id = n.check_id")
_BACKFILL_SQLITE = (
    "UPDATE checks SET "
    "tasks_total = (SELECT count(*) FROM check_tasks t WHERE t.check_id = checks.id), "
    f"tasks_open = (SELECT count(*) FROM check_tasks t WHERE t.check_id = checks.id AND t.status IN {OPEN}), "
    "tasks_produced = (SELECT count(*) FROM check_tasks t WHERE t.check_id = checks.id "
    f"AND t.status IN {PRODUCED}) WHERE EXISTS (SELECT 1 FROM check_tasks t WHERE t.check_id = checks.id)")


def create_counting(dialect: str) -> None:
    """The triggers that keep the counts (and, on Postgres, their function)."""
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name in COLUMNS:
        op.add_column("checks", sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    create_counting(dialect)  # on Postgres, from here on no task changes until this commits
    op.execute(_BACKFILL_PG if dialect == "postgresql" else _BACKFILL_SQLITE)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON check_tasks" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS check_tasks_count()")
    with op.batch_alter_table("checks") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
