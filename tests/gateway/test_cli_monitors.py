"""`hostcheck monitors` against Envoy: create, list, show, pause, resume, events, delete and watch,
with an API key; refusals name the field and exit 3, like `hostcheck check`.

The commands run in-process through click (in a thread: they call asyncio.run, and the services run
on this test's loop), except `watch`, which runs as a process to be stopped with a real Ctrl-C (SIGINT).
The gateway's system runs monitors every second at the least (tests/conftest.py), with one agent.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid

import grpc
import pytest
from click.testing import CliRunner, Result

from hostcheck.cli.main import main
from hostcheck.v1 import keys_pb2, keys_pb2_grpc, monitors_pb2, monitors_pb2_grpc
from tests.conftest import ADMIN_TOKEN
from tests.helpers import Proc, assert_eventually, free_port, hostcheck_cmd


async def cli(gateway, *args: str, key: str = "", stdin: str | None = None) -> Result:
    """`hostcheck monitors ARGS --server <envoy>` with HOSTCHECK_API_KEY=key (none: unset)."""
    env = {"HOSTCHECK_API_KEY": key or None, "HOSTCHECK_ADMIN_TOKEN": None, "HOSTCHECK_SERVER": None}
    return await asyncio.to_thread(CliRunner().invoke, main, ["monitors", *args, "--server", gateway.addr],
                                   env=env, input=stdin)


def said(result: Result) -> str:
    return f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


async def new_key(gateway) -> tuple[str, str]:
    async with grpc.aio.insecure_channel(gateway.addr) as channel:
        made = await keys_pb2_grpc.KeysServiceStub(channel).CreateKey(
            keys_pb2.CreateKeyRequest(name=f"cli-monitors-{uuid.uuid4().hex[:8]}"),
            metadata=[("authorization", f"Bearer {ADMIN_TOKEN}")], timeout=10)
    return made.key_id, made.api_key


@pytest.fixture
async def key(gateway):
    """A fresh key; its monitors are deleted after the test (the gateway's agent serves later tests too)."""
    key_id, api_key = await new_key(gateway)
    yield api_key
    async with grpc.aio.insecure_channel(gateway.addr) as channel:
        stub = monitors_pb2_grpc.MonitorsServiceStub(channel)
        metadata = [("authorization", f"Bearer {api_key}")]
        for m in (await stub.ListMonitors(monitors_pb2.ListMonitorsRequest(page_size=200), metadata=metadata,
                                          timeout=10)).monitors:
            await stub.DeleteMonitor(monitors_pb2.DeleteMonitorRequest(monitor_id=m.monitor_id), metadata=metadata,
                                     timeout=10)


async def create(gateway, key: str, *args: str) -> dict:
    made = await cli(gateway, "create", *args, "--json", key=key)
    assert made.exit_code == 0, said(made)
    return json.loads(made.stdout)


async def shown(gateway, key: str, monitor_id: str) -> dict:
    result = await cli(gateway, "show", monitor_id, "--json", key=key)
    assert result.exit_code == 0, said(result)
    return json.loads(result.stdout)


async def test_create_list_show_pause_resume_and_delete(gateway, key):
    made = await cli(gateway, "create", gateway.addr, "--check", "tcp", "--name", "envoy port", "--every", "2s",
                     "--timeout", "1s", "--quorum", "1", "--for-runs", "2", "--limit", "1",
                     "--status-slug", f"cli-{uuid.uuid4().hex[:8]}", key=key)
    assert made.exit_code == 0, said(made)
    fields = dict(line.split(":", 1) for line in made.stdout.splitlines() if line.startswith(("monitor_id:",
                                                                                              "webhook_secret:")))
    monitor_id, secret = fields["monitor_id"].strip(), fields["webhook_secret"].strip()
    assert uuid.UUID(monitor_id) and len(secret) == 64 and "shown only now" in made.stdout, said(made)

    # The options land where a check's would, and the monitor's own fields are set.
    with_options = await create(gateway, key, "127.0.0.1", "-t", "http", "-t", "tcp", "--port", "8", "--every",
                                "1m", "--timeout", "2500ms", "-o", "http.method=HEAD", "--from", "Europe",
                                "--webhook", "http://127.0.0.1:9/hook", "--paused")
    assert with_options["check"]["http"]["method"] == "HEAD" and with_options["check"]["tcp"]["port"] == 8
    assert with_options["check"]["agents"]["magic"] == ["Europe"] and with_options["check"]["timeout_ms"] == 2500
    assert with_options["interval_s"] == 60 and with_options["alert"]["webhook_url"] == "http://127.0.0.1:9/hook"
    assert with_options["state"] == "paused" and with_options["name"] == "127.0.0.1 http+tcp"

    # list: a row per monitor, whole ids even through a pipe; --json and --state.
    listed = await cli(gateway, "list", key=key)
    assert listed.exit_code == 0, said(listed)
    row = next(line for line in listed.stdout.splitlines() if monitor_id in line)
    assert "envoy port" in row and gateway.addr in row and "tcp" in row, listed.stdout
    assert with_options["monitor_id"] in listed.stdout and "UPTIME 24H / 7D" in listed.stdout
    paused = await cli(gateway, "list", "--state", "paused", "--json", key=key)
    assert [m["monitor_id"] for m in json.loads(paused.stdout)["monitors"]] == [with_options["monitor_id"]]

    # A run happens within seconds (every 2 s): show has it, its verdict and the state it led to.
    async def evaluated():
        view = await shown(gateway, key, monitor_id)
        return view if view["monitor"]["state"] != "pending" else None
    view = await assert_eventually(evaluated, timeout=20, interval=0.2, message="a run evaluated")
    assert view["monitor"]["state"] == "up" and "up" in [r.get("verdict") for r in view["runs"]], view
    text = await cli(gateway, "show", monitor_id, key=key)
    assert text.exit_code == 0, said(text)
    for words in (monitor_id, "envoy port", f"{gateway.addr} (tcp)", "every", "2s, timeout 1000 ms",
                  "down when 1 agent(s) fail 2 run(s) in a row", "last runs", "#1", "state changes", "pending -> up"):
        assert words in text.stdout, (words, text.stdout)

    # pause, then resume: each says so and is a state change.
    result = await cli(gateway, "pause", monitor_id, key=key)
    assert result.exit_code == 0 and f"paused {monitor_id} (envoy port)" in result.stdout, said(result)
    assert (await shown(gateway, key, monitor_id))["monitor"]["state"] == "paused"
    result = await cli(gateway, "resume", monitor_id, key=key)
    assert result.exit_code == 0 and f"resumed {monitor_id} (envoy port): state pending" in result.stdout, \
        said(result)
    events = await cli(gateway, "events", monitor_id, "--json", key=key)
    changes = [(e["from_state"], e["to_state"]) for e in json.loads(events.stdout)["events"]]
    # Newest first (a run may have been evaluated since the resume: pending -> up).
    assert changes.index(("paused", "pending")) < changes.index(("up", "paused")), changes
    text = await cli(gateway, "events", monitor_id, key=key)
    assert "up -> paused (an edit)" in text.stdout and "pending -> up (run #" in text.stdout, said(text)

    # delete asks first: "n" keeps it (exit 1); "y" deletes and says what went.
    kept = await cli(gateway, "delete", monitor_id, key=key, stdin="n\n")
    assert kept.exit_code == 1 and "Delete monitor" in kept.stdout, said(kept)
    assert (await cli(gateway, "show", monitor_id, key=key)).exit_code == 0
    gone = await cli(gateway, "delete", monitor_id, key=key, stdin="y\n")
    assert gone.exit_code == 0 and f"deleted monitor {monitor_id} (envoy port: tcp of {gateway.addr})" in gone.stdout, \
        said(gone)
    missing = await cli(gateway, "show", monitor_id, key=key)
    assert missing.exit_code == 3 and "NOT_FOUND" in missing.stderr, said(missing)
    quiet = await cli(gateway, "delete", with_options["monitor_id"], "--yes", "--json", key=key)
    assert quiet.exit_code == 0 and json.loads(quiet.stdout) == {"monitor_id": with_options["monitor_id"]}, said(quiet)
    empty = await cli(gateway, "list", key=key)
    assert empty.exit_code == 0 and empty.stdout.strip() == "no monitors", said(empty)


@pytest.mark.parametrize(("args", "field"), [
    (("--every", "2d"), "interval_s"),
    (("--quorum", "11"), "alert.quorum"),
    (("--for-runs", "101"), "alert.for_runs"),
    (("--webhook", "ftp://127.0.0.1/hook"), "alert.webhook_url"),
    (("--status-slug", "Not A Slug"), "status_slug"),
    (("--name", "x" * 101), "name"),
    (("-o", "http.method=BREW"), "http.method"),
])
async def test_a_refused_monitor_names_the_field_and_exits_3(gateway, key, args, field):
    result = await cli(gateway, "create", "127.0.0.1", "-t", "http", *args, key=key)
    assert result.exit_code == 3 and "INVALID_ARGUMENT" in result.stderr and f"{field}:" in result.stderr, said(result)


async def test_usage_errors_exit_2_and_other_callers_get_not_found(gateway, key):
    # Locally refused, before any call: no key, a bad duration, a fraction of a second, a bad -o.
    for args, words, with_key in (
        (("create", "127.0.0.1", "-t", "tcp"), "monitors belong to an API key", False),
        (("list",), "monitors belong to an API key", False),
        (("create", "127.0.0.1", "-t", "tcp", "--every", "soon"), "'soon' is not a duration", True),
        (("create", "127.0.0.1", "-t", "tcp", "--every", "1500ms"), "whole seconds", True),
        (("create", "127.0.0.1", "-t", "tcp", "-o", "tcp.nope=1"), "tcp has no field 'nope'", True),
    ):
        result = await cli(gateway, *args, key=key if with_key else "")
        assert result.exit_code == 2 and words in result.stderr, (args, said(result))

    made = await create(gateway, key, "127.0.0.1", "-t", "tcp", "--port", str(free_port()), "--paused")
    _, other = await new_key(gateway)
    for command in ("show", "pause", "resume", "events", "delete"):
        result = await cli(gateway, command, made["monitor_id"], "--yes" if command == "delete" else "--json",
                           key=other)
        assert result.exit_code == 3 and "NOT_FOUND" in result.stderr, (command, said(result))
    assert "no monitors" in (await cli(gateway, "list", key=other)).stdout
    wrong = await cli(gateway, "list", key="hck_not-a-key")
    assert wrong.exit_code == 3 and "UNAUTHENTICATED" in wrong.stderr, said(wrong)
    # Still there for its owner, untouched.
    assert (await shown(gateway, key, made["monitor_id"]))["monitor"]["state"] == "paused"


def watch_proc(gateway, key: str, monitor_id: str, tmp_path, *extra: str) -> Proc:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    return Proc(hostcheck_cmd("monitors", "watch", monitor_id, "--server", gateway.addr, *extra),
                env={**env, "HOSTCHECK_API_KEY": key}, log_path=tmp_path / f"watch-{uuid.uuid4().hex[:6]}.log")


async def test_watch_prints_runs_and_state_changes_until_ctrl_c(gateway, key, tmp_path):
    """A target that refuses connections: each run fails on the one agent, so the monitor goes down."""
    made = await create(gateway, key, f"127.0.0.1:{free_port()}", "-t", "tcp", "--every", "1s", "--timeout", "500ms",
                        "--name", "closed port", "--paused")
    monitor_id = made["monitor_id"]
    text = watch_proc(gateway, key, monitor_id, tmp_path)
    lines = watch_proc(gateway, key, monitor_id, tmp_path, "--json")
    try:
        await assert_eventually(lambda: "state paused since" in text.output() and '"snapshot"' in lines.output(),
                                timeout=20, message="both watches have the snapshot")
        assert f"watching {monitor_id} (closed port)" in text.output()
        assert (await cli(gateway, "resume", monitor_id, key=key)).exit_code == 0

        def down() -> bool:
            out = text.output()
            return "state pending -> down (run #" in out and "1 of 1 agents failing (gw-agent: " in out
        await assert_eventually(down, timeout=20, message=f"the watch shows the monitor going down:\n{text.output()}")
        out = text.output()
        assert "state paused -> pending (an edit)" in out and "run #1 started: check " in out, out

        # Ctrl-C ends it quietly, with 0.
        os.kill(text.pid, signal.SIGINT)
        await assert_eventually(lambda: not text.alive(), timeout=10, message="watch exits on SIGINT")
        assert text.popen.returncode == 0 and "Traceback" not in text.output(), text.output()

        # Deleting the monitor ends the other watch with 3, its last line the deletion.
        assert (await cli(gateway, "delete", monitor_id, "--yes", key=key)).exit_code == 0
        await assert_eventually(lambda: not lines.alive(), timeout=10, message="watch ends on deletion")
        assert lines.popen.returncode == 3, lines.output()
        events = [json.loads(line) for line in lines.output().splitlines() if line.startswith("{")]
        kinds = [e["event"] for e in events]
        assert kinds[0] == "snapshot" and kinds[-1] == "deleted" and "state" in kinds and "run" in kinds, kinds
        assert any(e["event"] == "state" and e["change"]["to_state"] == "down" for e in events), events
    finally:
        text.stop()
        lines.stop()
