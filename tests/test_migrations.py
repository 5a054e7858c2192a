"""Migration 0002 on both databases: tasks get their agent's snapshot, results stop referring to agents."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from hostcheck.services.storage import db
from tests.conftest import fresh_postgres_db


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request, tmp_path):
    if request.param == "postgres":
        with fresh_postgres_db() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'migrate.db'}"


def alembic(url: str, action: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", db.sync_url(url).replace("%", "%%"))
    getattr(command, action)(cfg, revision)


@contextlib.contextmanager
def connected(url: str):
    engine = sa.create_engine(db.sync_url(url))
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def fks_to_agents(url: str, table: str) -> list[dict]:
    with connected(url) as conn:
        return [fk for fk in sa.inspect(conn).get_foreign_keys(table) if fk["referred_table"] == "agents"]


def task_columns(url: str) -> set[str]:
    with connected(url) as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns("check_tasks")}


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def run(conn, statement: str, **values):
    """Plain SQL, with ids and times bound as the models store them (SQLite: ids as 32 hex digits)."""
    def typed(value):
        if isinstance(value, uuid.UUID):
            return sa.Uuid()
        return sa.DateTime(timezone=True) if isinstance(value, datetime) else None
    return conn.execute(sa.text(statement).bindparams(*(sa.bindparam(k, v, type_=typed(v))
                                                        for k, v in values.items())))


def insert_check(conn, *, agent_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    check_id, task_id = uuid.uuid4(), uuid.uuid4()
    run(conn, "INSERT INTO checks (id, target, check_types, request, status, created_at, deadline_at, client_ip) "
              "VALUES (:id, 'example.com', '[\"tcp\"]', '{}', 'in_progress', :now, :now, '')", id=check_id, now=NOW)
    run(conn, "INSERT INTO check_tasks (id, check_id, agent_id, check_type, status, reason, created_at, deadline_at) "
              "VALUES (:id, :check, :agent, 'tcp', 'pending', '', :now, :now)",
        id=task_id, check=check_id, agent=agent_id, now=NOW)
    run(conn, "INSERT INTO check_results (id, task_id, check_id, agent_id, check_type, success, data, error_code, "
              "created_at, late) VALUES (:id, :task, :check, :agent, 'tcp', true, '{}', '', :now, false)",
        id=uuid.uuid4(), task=task_id, check=check_id, agent=agent_id, now=NOW)
    return check_id, task_id


def test_upgrade_snapshots_each_tasks_agent_and_drops_the_keys_into_agents(database_url):
    url = database_url
    alembic(url, "upgrade", "0001")
    agent_id = uuid.uuid4()
    with connected(url) as conn:
        run(conn, "INSERT INTO agents (id, name, location, region, country, city, asn, labels, capabilities, version, "
                  "api_token_hash, registered_at, metadata) VALUES (:id, 'fra-1', 'Frankfurt, DE', 'eu-central', "
                  "'DE', 'Frankfurt', 0, '{}', '[]', '', 'h', :now, '{}')", id=agent_id, now=NOW)
        _, task_id = insert_check(conn, agent_id=agent_id)
    assert len(fks_to_agents(url, "check_tasks")) == len(fks_to_agents(url, "check_results")) == 1

    alembic(url, "upgrade", "0002")
    with connected(url) as conn:
        row = run(conn, "SELECT agent_name, location, region, country, city FROM check_tasks WHERE id = :id",
                  id=task_id).one()
        assert tuple(row) == ("fra-1", "Frankfurt, DE", "eu-central", "DE", "Frankfurt")
    assert fks_to_agents(url, "check_tasks") == fks_to_agents(url, "check_results") == []
    with connected(url) as conn:
        # Results no longer depend on the registry's table: a task may name an agent it does not have.
        orphan_check, _ = insert_check(conn, agent_id=uuid.uuid4())
        new = run(conn, "SELECT agent_name, city FROM check_tasks WHERE check_id = :id", id=orphan_check).one()
        assert tuple(new) == ("", "")
        # The rest of the schema is as it was: tasks still belong to their check.
        fks = sa.inspect(conn).get_foreign_keys("check_tasks")
        assert [(fk["referred_table"], fk["constrained_columns"]) for fk in fks] == [("checks", ["check_id"])]
        assert {i["name"] for i in sa.inspect(conn).get_indexes("check_tasks")} >= {
            "idx_tasks_check_id", "idx_tasks_agent_id", "idx_tasks_status_deadline"}
        run(conn, "DELETE FROM check_results WHERE check_id = :id", id=orphan_check)
        run(conn, "DELETE FROM check_tasks WHERE check_id = :id", id=orphan_check)

    alembic(url, "downgrade", "0001")
    assert not {"agent_name", "location", "region", "country", "city"} & task_columns(url)
    assert len(fks_to_agents(url, "check_tasks")) == len(fks_to_agents(url, "check_results")) == 1
    alembic(url, "upgrade", "0002")  # and up again
    assert fks_to_agents(url, "check_tasks") == []
    assert {"agent_name", "location", "region", "country", "city"} <= task_columns(url)


# ---- 0006: check_tasks and check_results partitioned by month (Postgres), for retention ----------------

def insert_dated(conn, at: datetime) -> uuid.UUID:
    """A check with one task and its result, all written at `at`."""
    check_id, task_id, agent_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    run(conn, "INSERT INTO checks (id, target, check_types, request, status, created_at, deadline_at, client_ip) "
              "VALUES (:id, 'example.com', '[\"tcp\"]', '{}', 'completed', :at, :at, '')", id=check_id, at=at)
    run(conn, "INSERT INTO check_tasks (id, check_id, agent_id, check_type, status, reason, created_at, deadline_at) "
              "VALUES (:id, :check, :agent, 'tcp', 'completed', '', :at, :at)",
        id=task_id, check=check_id, agent=agent_id, at=at)
    run(conn, "INSERT INTO check_results (id, task_id, check_id, agent_id, check_type, success, data, error_code, "
              "created_at, late) VALUES (:id, :task, :check, :agent, 'tcp', true, '{}', '', :at, false)",
        id=uuid.uuid4(), task=task_id, check=check_id, agent=agent_id, at=at)
    return check_id


def rows_of(url: str, check_id: uuid.UUID) -> tuple[int, int, int]:
    with connected(url) as conn:
        return tuple(run(conn, f"SELECT count(*) FROM {table} WHERE {column} = :id", id=check_id).scalar_one()
                     for table, column in (("checks", "id"), ("check_tasks", "check_id"),
                                           ("check_results", "check_id")))


def partitioned(url: str) -> dict[str, list[str]]:
    """Partitioned table -> its partitions (Postgres)."""
    with connected(url) as conn:
        rows = run(conn, "SELECT p.relname, c.relname FROM pg_partitioned_table t "
                         "JOIN pg_class p ON p.oid = t.partrelid "
                         "LEFT JOIN pg_inherits i ON i.inhparent = p.oid "
                         "LEFT JOIN pg_class c ON c.oid = i.inhrelid AND c.relkind = 'r'").all()
    out: dict[str, list[str]] = {}
    for parent, child in rows:
        out.setdefault(parent, [])
        if child:
            out[parent].append(child)
    return {k: sorted(v) for k, v in out.items()}


def keys(url: str) -> dict[str, object]:
    with connected(url) as conn:
        inspector = sa.inspect(conn)
        return {
            "pk": {t: inspector.get_pk_constraint(t)["constrained_columns"] for t in ("check_tasks", "check_results")},
            "fks": sorted((t, fk["referred_table"], tuple(fk["constrained_columns"]))
                          for t in ("check_tasks", "check_results") for fk in inspector.get_foreign_keys(t)),
            "unique_task_id": any(u["column_names"] == ["task_id"] for u in
                                  inspector.get_unique_constraints("check_results")),
            "task_id_index": any(i["column_names"] == ["task_id"] for i in inspector.get_indexes("check_results")),
        }


PLAIN_KEYS = {
    "pk": {"check_tasks": ["id"], "check_results": ["id"]},
    "fks": [("check_results", "check_tasks", ("task_id",)), ("check_results", "checks", ("check_id",)),
            ("check_tasks", "checks", ("check_id",))],
    "unique_task_id": True,
}


def test_0006_partitions_tasks_and_results_by_month_on_postgres_and_back(database_url):
    from hostcheck.services.results.retention import add_months, month_start

    url = database_url
    alembic(url, "upgrade", "0005")
    old_month = datetime(2025, 3, 10, tzinfo=UTC)
    with connected(url) as conn:
        old, recent = insert_dated(conn, old_month), insert_dated(conn, NOW)
    postgres = url.startswith("postgresql")

    alembic(url, "upgrade", "0006")
    assert rows_of(url, old) == rows_of(url, recent) == (1, 1, 1)
    if postgres:
        # Every month with rows, through the current month and two more (the retention job's lead).
        last = max(add_months(month_start(datetime.now(UTC)), 2), month_start(NOW))
        months = [month_start(old_month)]
        while months[-1] < last:
            months.append(add_months(months[-1], 1))
        assert partitioned(url) == {t: [f"{t}_p{m:%Y_%m}" for m in months] for t in ("check_results", "check_tasks")}
        with connected(url) as conn:
            assert run(conn, "SELECT count(*) FROM check_results_p2025_03").scalar_one() == 1
            assert run(conn, "SELECT count(*) FROM check_tasks_p2026_11").scalar_one() == 1
        assert keys(url) == {"pk": {"check_tasks": ["id", "created_at"], "check_results": ["id", "created_at"]},
                             "fks": [], "unique_task_id": False, "task_id_index": True}
    else:
        assert {k: v for k, v in keys(url).items() if k != "task_id_index"} == PLAIN_KEYS
    with connected(url) as conn:  # new rows still land (in the current month's partition on Postgres)
        insert_dated(conn, datetime.now(UTC))

    alembic(url, "downgrade", "0005")
    assert rows_of(url, old) == rows_of(url, recent) == (1, 1, 1)
    if postgres:
        assert partitioned(url) == {}
    assert {k: v for k, v in keys(url).items() if k != "task_id_index"} == PLAIN_KEYS

    alembic(url, "upgrade", "0006")  # and up again
    assert rows_of(url, old) == (1, 1, 1)
    if postgres:
        assert "check_results_p2025_03" in partitioned(url)["check_results"]
