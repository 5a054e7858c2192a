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
