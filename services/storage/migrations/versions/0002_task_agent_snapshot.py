"""check_tasks keep a snapshot of their agent; results no longer refer to the registry's agents

The scheduler now sends each planned task's agent name and location (OpenCheck), and the
results service stores them on the task. Tasks of existing checks get theirs from agents,
once, here. The foreign keys from check_tasks and check_results to agents go: each service
owns its tables, and results must not depend on the registry's.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 18:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# (column on check_tasks, column of agents, length): the registry's limits for the same fields.
SNAPSHOT = (("agent_name", "name", 255), ("location", "location", 255), ("region", "region", 64),
            ("country", "country", 2), ("city", "city", 128))
TABLES = ("check_tasks", "check_results")
# SQLite keeps 0001's foreign keys unnamed; batch mode names them by this convention when it
# reflects the table, so they can be dropped by name. Postgres named them <table>_agent_id_fkey.
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _fks_to_agents(table: str) -> list[str]:
    found = sa.inspect(op.get_bind()).get_foreign_keys(table)
    return [fk["name"] or f"fk_{table}_agent_id_agents" for fk in found if fk["referred_table"] == "agents"]


def upgrade() -> None:
    with op.batch_alter_table("check_tasks") as batch:
        for column, _, length in SNAPSHOT:
            batch.add_column(sa.Column(column, sa.String(length=length), nullable=False, server_default=""))
    # One statement, a row-value correlated subquery (Postgres 10+ and SQLite 3.15+ both take it).
    # A task whose agent is gone keeps the empty defaults.
    columns = ", ".join(c for c, _, _ in SNAPSHOT)
    sources = ", ".join(f"agents.{a}" for _, a, _ in SNAPSHOT)
    op.execute(f"UPDATE check_tasks SET ({columns}) = "
               f"(SELECT {sources} FROM agents WHERE agents.id = check_tasks.agent_id) "
               f"WHERE EXISTS (SELECT 1 FROM agents WHERE agents.id = check_tasks.agent_id)")
    for table in TABLES:
        names = _fks_to_agents(table)
        if names:
            with op.batch_alter_table(table, naming_convention=NAMING) as batch:
                for name in names:
                    batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    # Fails if a task or result names an agent the agents table does not have (none can be invented).
    for table in TABLES:
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            name = f"{table}_agent_id_fkey" if op.get_bind().dialect.name == "postgresql" else None
            batch.create_foreign_key(name or f"fk_{table}_agent_id_agents", "agents", ["agent_id"], ["id"])
    with op.batch_alter_table("check_tasks") as batch:
        for column, _, _ in reversed(SNAPSHOT):
            batch.drop_column(column)
