"""results' data keyed by check type: {check_type: {...}} instead of the bare fields

Results are typed per check type now (checks.proto ResultData: one field per type), and
the results service stores that message as JSON (snake_case names), so a stored result
reads back with its type. Rows written before hold the bare fields of their type; each
is wrapped under its own check_type. Rows already keyed by their type are left alone
(no flat result ever had a field named after its own type), so running it twice is harmless.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 20:00:00.000000
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# data is jsonb on Postgres and JSON text on SQLite (0001). check_type is one of ours (a-z), but is
# quoted in SQLite's JSON path all the same.
_SQLITE_PATH = """'$."' || check_type || '"'"""

UPGRADE = {
    "postgresql": "UPDATE check_results SET data = jsonb_build_object(check_type, data) WHERE NOT (data ? check_type)",
    "sqlite": f"UPDATE check_results SET data = json_object(check_type, json(data)) "
              f"WHERE json_type(data, {_SQLITE_PATH}) IS NULL",
}
DOWNGRADE = {
    "postgresql": "UPDATE check_results SET data = data -> check_type "
                  "WHERE jsonb_typeof(data -> check_type) = 'object'",
    "sqlite": f"UPDATE check_results SET data = json_extract(data, {_SQLITE_PATH}) "
              f"WHERE json_type(data, {_SQLITE_PATH}) = 'object'",
}


def _statement(statements: dict[str, str]) -> str:
    dialect = op.get_bind().dialect.name
    if dialect not in statements:
        raise NotImplementedError(f"no rewrite of check_results.data for {dialect}")
    return statements[dialect]


def upgrade() -> None:
    op.execute(_statement(UPGRADE))


def downgrade() -> None:
    op.execute(_statement(DOWNGRADE))
