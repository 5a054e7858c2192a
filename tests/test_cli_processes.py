"""Processes as an operator starts them: a misspelt or malformed HOSTCHECK_* setting stops each one at
once with a message naming it; `hostcheck config` lists every setting; `hostcheck migrate` brings a
fresh database to the schema, idempotently."""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest

from hostcheck.core import config as cfg
from tests.helpers import hostcheck_cmd


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    return subprocess.run(hostcheck_cmd(*args), env={**base, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("command", "env", "message"), [
    ("registry", {"HOSTCHECK_LISTN": "127.0.0.1:1"}, "unknown setting(s): HOSTCHECK_LISTN"),
    ("results", {"HOSTCHECK_TASK_GRACE_S": "soon"}, "HOSTCHECK_TASK_GRACE_S='soon': expected a number"),
    ("scheduler", {"HOSTCHECK_RATE_LIMIT": "ten"}, "HOSTCHECK_RATE_LIMIT='ten': expected an integer"),
    ("agent", {"HOSTCHECK_ASN": "AS3320"}, "HOSTCHECK_ASN='AS3320': expected an integer"),
    ("agent", {"HOSTCHECK_SCHEDULER_ADRR": "127.0.0.1:1"}, "unknown setting(s): HOSTCHECK_SCHEDULER_ADRR"),
])
def test_a_bad_setting_stops_the_process_naming_it(command, env, message):
    done = run(command, **env)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_config_lists_every_setting_with_its_default():
    done = run("config")
    assert done.returncode == 0, done.stderr
    for cls in cfg.ALL_CONFIGS:
        assert f"\n{cls.__name__}\n" in done.stdout
        for var, default, text in cfg.describe(cls):
            assert f"  {var}={default}\n      {text}" in done.stdout, var
    assert "HOSTCHECK_DRAIN_TIMEOUT_S=30.0" in done.stdout


def test_migrate_brings_a_fresh_database_to_the_schema_twice_over(pg_url):
    for _ in range(2):
        done = run("migrate", HOSTCHECK_DATABASE_URL=pg_url)
        assert done.returncode == 0, done.stderr
        assert "database schema is up to date" in done.stdout
    with psycopg.connect(pg_url) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert version and {"agents", "checks", "check_tasks", "check_results"} <= tables
