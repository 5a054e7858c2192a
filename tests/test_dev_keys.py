"""`hostcheck dev` honours HOSTCHECK_* settings (its flags win): API keys, ownership and quotas on the
embedded default with HOSTCHECK_ADMIN_TOKEN from the environment, and `hostcheck keys`."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess

import httpx
import pytest

from tests.helpers import Proc, assert_eventually, free_port, hostcheck_cmd
from tests.keyflows import KeyFlows, bearer

ADMIN_TOKEN = "dev-test-admin-token"


def clean_env(**settings: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}, **settings}


async def start_dev(tmp_path, *args: str, log: str = "dev.log", **settings: str) -> tuple[int, Proc]:
    port = free_port()
    proc = Proc(hostcheck_cmd("dev", "--port", str(port), "--data-dir", str(tmp_path / "data"), *args),
                env=clean_env(**settings), log_path=tmp_path / log)

    def running() -> bool:
        if not proc.alive():
            raise AssertionError(f"hostcheck dev exited:\n{proc.output()[-3000:]}")
        return "Host Checker is running" in proc.output()
    try:
        await assert_eventually(running, timeout=60, interval=0.1, message="dev system running")
    except BaseException:
        proc.stop()
        raise
    return port, proc


async def run(*args: str, **settings: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, list(args), capture_output=True, text=True, timeout=60,
                                   env=clean_env(**settings))


async def test_key_flows_and_the_keys_command_on_dev(tmp_path, tcp_target):
    # The environment's settings apply (admin token, anonymous rate limit, targets), and a flag
    # beats its setting: HOSTCHECK_ALLOW_TARGETS names a range without loopback, --allow-target wins.
    port, proc = await start_dev(tmp_path, "--allow-target", "127.0.0.0/8", HOSTCHECK_ADMIN_TOKEN=ADMIN_TOKEN,
                                 HOSTCHECK_RATE_LIMIT="5", HOSTCHECK_ALLOW_TARGETS="192.0.2.0/24")
    try:
        assert "the token in HOSTCHECK_ADMIN_TOKEN" in proc.output()
        assert not (tmp_path / "data" / "admin-token").exists()
        server = f"127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=f"http://{server}", timeout=10) as rest:
            flows = KeyFlows(rest, admin_token=ADMIN_TOKEN, target=f"127.0.0.1:{tcp_target}", grpc_addrs=[server])
            await flows.run_all()

            # HOSTCHECK_RATE_LIMIT=5: the anonymous checks so far (one in the flows) plus four more reach it.
            for _ in range(4):
                assert (await flows.create_check({})).status_code == 200
            refused = await flows.create_check({})
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0, refused.text

            # The CLI: create, list, revoke with the admin token from the environment.
            made = await run(*hostcheck_cmd("keys", "create", "cli key", "--quota", "7", "--server", server, "--json"),
                             HOSTCHECK_ADMIN_TOKEN=ADMIN_TOKEN)
            assert made.returncode == 0, made.stderr
            key = json.loads(made.stdout)
            assert key["key"]["quota_per_hour"] == 7 and key["api_key"].startswith("hck_")
            assert (await flows.create_check(bearer(key["api_key"]))).status_code == 200
            # `hostcheck check` with HOSTCHECK_API_KEY: the key owns the check.
            checked = await run(*hostcheck_cmd("check", f"127.0.0.1:{tcp_target}", "--type", "tcp", "--server", server,
                                               "--json"), HOSTCHECK_API_KEY=key["api_key"])
            assert checked.returncode == 0, checked.stderr
            assert json.loads(checked.stdout)["created_by_key_id"] == key["key_id"]

            listed = await run(*hostcheck_cmd("keys", "list", "--server", server), HOSTCHECK_ADMIN_TOKEN=ADMIN_TOKEN)
            assert listed.returncode == 0, listed.stderr
            line = next(row for row in listed.stdout.splitlines() if row.startswith(key["key_id"]))
            assert line.split()[1:5] == ["cli", "key", "7", "active"]
            assert key["api_key"] not in listed.stdout

            revoked = await run(*hostcheck_cmd("keys", "revoke", key["key_id"], "--server", server),
                                HOSTCHECK_ADMIN_TOKEN=ADMIN_TOKEN)
            assert revoked.returncode == 0 and f"revoked {key['key_id']} (cli key)" in revoked.stdout, revoked.stderr
            assert (await flows.create_check(bearer(key["api_key"]))).status_code == 401

            # Without the admin token, or with a key instead, the CLI says why and exits 1.
            missing = await run(*hostcheck_cmd("keys", "list", "--server", server))
            assert missing.returncode == 1 and "no admin token" in missing.stderr
            wrong = await run(*hostcheck_cmd("keys", "list", "--server", server, "--admin-token", key["api_key"]))
            assert wrong.returncode == 1 and "UNAUTHENTICATED" in wrong.stderr
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]


async def test_dev_makes_an_admin_token_in_its_data_dir_when_none_is_set(tmp_path):
    port, proc = await start_dev(tmp_path, "--agents", "0")
    try:
        path = tmp_path / "data" / "admin-token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert f"token in {path} (0600)" in proc.output()
        token = path.read_text().strip()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as rest:
            made = await rest.post("/api/keys", json={"name": "k"}, headers=bearer(token))
            assert made.status_code == 200, made.text
            assert (await rest.get("/api/keys", headers=bearer("not-it"))).status_code == 401
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]
    # The next start keeps the same token.
    port, proc = await start_dev(tmp_path, "--agents", "0", log="dev-again.log")
    try:
        assert path.read_text().strip() == token
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]


@pytest.mark.parametrize(("settings", "error"), [
    ({"HOSTCHECK_RATE_LIMT": "5"}, "unknown setting(s): HOSTCHECK_RATE_LIMT"),
    ({"HOSTCHECK_RATE_LIMIT": "many"}, "HOSTCHECK_RATE_LIMIT='many': expected an integer"),
])
async def test_dev_fails_loudly_on_bad_settings(tmp_path, settings, error):
    out = await run(*hostcheck_cmd("dev", "--port", str(free_port()), "--data-dir", str(tmp_path / "d")), **settings)
    assert out.returncode == 1, out.stdout + out.stderr
    assert error in out.stderr
