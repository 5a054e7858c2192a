"""The embedded default, as a user runs it: `hostcheck dev`, then `hostcheck check` and grpcurl."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hostcheck.cli.dev import DEMO_LOCATIONS, LOOPBACK_TARGETS, allowed_targets, demo_agent
from tests.helpers import ROOT, VENV_BIN, Proc, assert_eventually, free_port, health_status, hostcheck_cmd


@pytest.fixture
async def dev(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    proc = Proc(hostcheck_cmd("dev", "--port", str(port), "--data-dir", str(tmp_path / "data"),
                              "--allow-target", "127.0.0.0/8"), env=env, log_path=tmp_path / "dev.log")
    try:
        await assert_eventually(lambda: _running(proc), timeout=60, interval=0.1, message="dev system running")
        yield port, proc
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]


def _running(proc: Proc) -> bool:
    if not proc.alive():
        raise AssertionError(f"hostcheck dev exited:\n{proc.output()[-3000:]}")
    return "Host Checker is running" in proc.output()


async def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    return await asyncio.to_thread(subprocess.run, list(args), capture_output=True, text=True, timeout=timeout, env=env)


async def test_check_through_dev_system(dev):
    port, proc = dev
    out = await run(*hostcheck_cmd("check", f"127.0.0.1:{port}", "--type", "tcp", "--type", "http",
                                   "--server", f"127.0.0.1:{port}", "--json"))
    assert out.returncode == 0, out.stderr
    check = json.loads(out.stdout)
    assert check["status"] == "completed"
    assert check["check_types"] == ["tcp", "http"]
    assert {t["agent_name"] for t in check["tasks"]} == {"Frankfurt (simulated)"}
    assert len(check["results"]) == 2
    tcp = next(r for r in check["results"] if r["check_type"] == "tcp")
    assert tcp["success"] is True and tcp["data"]["tcp"]["port"] == port and isinstance(tcp["duration_ms"], float | int)


async def test_check_progress_lines_and_exit_codes(dev):
    port, _ = dev
    out = await run(*hostcheck_cmd("check", f"127.0.0.1:{port}", "--type", "tcp", "--server", f"127.0.0.1:{port}"))
    assert out.returncode == 0, out.stderr
    assert "Frankfurt (simulated)" in out.stdout and "completed" in out.stdout

    bad = await run(*hostcheck_cmd("check", "10.1.2.3:80", "--type", "tcp", "--server", f"127.0.0.1:{port}"))
    assert bad.returncode == 3
    assert "target" in bad.stderr and "special-purpose" in bad.stderr

    assert "1 of 1 probe succeeded" in out.stdout

    # Distinct exit codes: none succeeded 4, some failed 1, a usage error 2 (a refused request is 3, above).
    closed = free_port()
    failed_probe = await run(*hostcheck_cmd("check", f"127.0.0.1:{closed}", "--type", "tcp",
                                            "--server", f"127.0.0.1:{port}"))
    assert failed_probe.returncode == 4, failed_probe.stdout + failed_probe.stderr
    assert "refused" in failed_probe.stdout and "0 of 1 probe succeeded" in failed_probe.stdout

    some = await run(*hostcheck_cmd("check", f"127.0.0.1:{port}", "--type", "tcp", "--type", "http",
                                    "-o", "http.expected_status=599", "--server", f"127.0.0.1:{port}"))
    assert some.returncode == 1, some.stdout + some.stderr
    assert "1 of 2 probes succeeded (1 failed)" in some.stdout

    usage = await run(*hostcheck_cmd("check", f"127.0.0.1:{port}", "--type", "tcp", "-o", "tcp.nope=1",
                                     "--server", f"127.0.0.1:{port}"))
    assert usage.returncode == 2 and "nope" in usage.stderr


async def test_grpcurl_lists_services_and_health_serving(dev):
    port, _ = dev
    out = await run(str(VENV_BIN / "grpcurl"), "-plaintext", f"127.0.0.1:{port}", "list")
    assert out.returncode == 0, out.stderr
    services = set(out.stdout.split())
    assert {"hostcheck.v1.SchedulerService", "hostcheck.v1.ResultsService", "hostcheck.v1.RegistryService",
            "hostcheck.v1.AgentStreamService", "grpc.health.v1.Health"} <= services
    assert await health_status(f"127.0.0.1:{port}") == 1  # SERVING


async def test_dev_refuses_a_port_in_use(dev, tmp_path):
    port, _ = dev
    out = await run(*hostcheck_cmd("dev", "--port", str(port), "--data-dir", str(tmp_path / "other")))
    assert out.returncode != 0
    assert f"127.0.0.1:{port}" in out.stderr and "--port" in out.stderr


# ---- the first run: `hostcheck dev --agents 3` as `make dev` starts it (no --allow-target) ------------

DEMO_AGENTS = 3


@dataclass
class DemoSystem:
    port: int
    proc: Proc

    @property
    def banner(self) -> str:
        out = self.proc.output()
        return out[out.index("Host Checker is running"):]

    def banner_line(self, key: str) -> str:
        found = re.search(rf"^  {key}:\s+(.*)$", self.banner, re.M)
        assert found, f"no {key!r} line in the banner:\n{self.banner}"
        return found.group(1)


@pytest.fixture(scope="module")
async def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    proc = Proc(hostcheck_cmd("dev", "--port", str(port), "--data-dir", str(work / "data"),
                              "--agents", str(DEMO_AGENTS)), env=env, log_path=work / "dev.log")
    try:
        await assert_eventually(lambda: _running(proc), timeout=60, interval=0.1, message="dev system running")
        yield DemoSystem(port, proc)
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]


async def test_the_banners_example_works_as_printed(demo):
    example = demo.banner_line("check")
    args = shlex.split(example)
    assert os.path.isabs(args[0]) and os.access(args[0], os.X_OK), example  # runs from any directory
    assert args[1:4] == ["check", f"http://127.0.0.1:{demo.port}/", "--type"], example
    out = await run(*args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{DEMO_AGENTS} of {DEMO_AGENTS} probes succeeded" in out.stdout, out.stdout
    assert "loopback" in demo.banner_line("targets") and "--allow-target" in demo.banner_line("targets")


async def test_the_start_is_quiet_one_banner_and_no_library_noise(demo):
    out = demo.proc.output()
    before = out[:out.index("Host Checker is running")]
    assert before.strip() == "", f"printed before the banner:\n{before}"
    assert out.count("Host Checker is running") == 1
    assert "alembic" not in out
    assert f"with {DEMO_AGENTS} local agents at simulated places (Frankfurt, New York, Tokyo)" in demo.banner


async def test_health_names_the_in_process_live_state(demo):
    async with httpx.AsyncClient() as client:
        reply = await client.get(demo.banner_line("health").split()[-1], timeout=10)
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "database": "ok", "redis": "not used (live state in memory)",
                            "live_state": "ok", "live_state_kind": "memory", "active_agents": DEMO_AGENTS}


def _metrics(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_of_every_service_are_served_where_the_banner_says(demo):
    url = demo.banner_line("metrics").split()[2]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url), url
    out = await run(*hostcheck_cmd("check", f"127.0.0.1:{demo.port}", "--type", "tcp",
                                   "--server", f"127.0.0.1:{demo.port}"))
    assert out.returncode == 0, out.stdout + out.stderr

    async with httpx.AsyncClient() as client:
        async def scraped():
            reply = await client.get(url, timeout=10)
            assert reply.status_code == 200
            samples = _metrics(reply.text)
            # results: taken only when served, so this shows dev serves them.
            assert samples[("hostcheck_tasks_finished_total",
                            frozenset({"check_type": "tcp", "outcome": "completed"}.items()))] == DEMO_AGENTS
            return reply.text, samples
        text, samples = await assert_eventually(scraped, timeout=10, message="the check's tasks counted")
    assert samples[("hostcheck_agent_registrations_total", frozenset())] == DEMO_AGENTS  # registry
    assert samples[("hostcheck_connected_agents", frozenset())] == DEMO_AGENTS  # scheduler
    assert ("hostcheck_agent_heartbeats_total", frozenset()) in samples
    types = re.findall(r"^# TYPE (\S+)", text, re.M)
    assert len(types) == len(set(types)), "a metric family is served twice"
    assert "process_resident_memory_bytes" in types


async def test_each_local_agent_is_at_its_own_simulated_place(demo):
    async with httpx.AsyncClient() as client:
        agents = (await client.get(f"http://127.0.0.1:{demo.port}/api/agents", timeout=10)).json()["agents"]
    assert len(agents) == DEMO_AGENTS
    by_name = {a["name"]: a for a in agents}
    for place in DEMO_LOCATIONS[:DEMO_AGENTS]:
        agent = by_name[f"{place.city} (simulated)"]
        assert agent["status"] == "online"
        assert (agent["latitude"], agent["longitude"]) == (place.latitude, place.longitude)
        assert (agent["city"], agent["country"], agent["region"]) == (place.city, place.country, place.region)
        assert agent["labels"] == {"simulated": "true"}
        assert "(simulated" in agent["location"]

    # The simulated places answer the agent filters like real ones.
    out = await run(*hostcheck_cmd("check", f"127.0.0.1:{demo.port}", "--type", "tcp", "--country", "JP",
                                   "--server", f"127.0.0.1:{demo.port}", "--json"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert [t["agent_name"] for t in json.loads(out.stdout)["tasks"]] == ["Tokyo (simulated)"]


async def test_a_guard_refusal_names_the_setting_that_allows_the_range(demo):
    out = await run(*hostcheck_cmd("check", "10.1.2.3:80", "--type", "tcp", "--server", f"127.0.0.1:{demo.port}"))
    assert out.returncode == 3
    assert "HOSTCHECK_ALLOW_TARGETS=10.0.0.0/8" in out.stderr, out.stderr


def _session(sid: int) -> list[int]:
    """Pids of the processes in session sid (Proc starts hostcheck dev in a session of its own)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(stat.parent.name))
    return pids


async def test_a_stop_during_the_start_leaves_no_agent_running(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    proc = Proc(hostcheck_cmd("dev", "--port", str(free_port()), "--data-dir", str(tmp_path / "data"),
                              "--agents", "3"), env=env, log_path=tmp_path / "dev.log")
    try:
        # Stop it as soon as the first agent process exists: usually before the agents are online.
        await assert_eventually(lambda: len(_session(proc.pid)) > 1 or "Host Checker is running" in proc.output(),
                                timeout=60, interval=0.01, message="an agent started")
    finally:
        code = proc.stop()
    assert code == 0, proc.output()[-3000:]
    assert "stopped before the start completed" in proc.output() or "stopping..." in proc.output()
    assert _session(proc.pid) == [], "processes of hostcheck dev outlived it"


def _make_plan(tmp_path, target: str) -> str:
    """What `make TARGET` would run on a fresh clone (no venv yet), without running it."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").touch()
    out = subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize(("target", "extra"), [("dev", "all"), ("test", "dev"), ("lint", "dev"),
                                               ("protos", "dev")])
def test_make_dev_installs_only_what_running_needs(tmp_path, target, extra):
    installs = re.findall(r"pip install .*-e '\.\[(\w+)\]'", _make_plan(tmp_path, target))
    # dev: the runtime only; test and lint add their tools on top of it. (A dry run lists a recursive
    # make's steps again: its stamps are not really made.)
    if extra == "all":
        assert set(installs) == {"all"}, installs
    else:
        assert installs[:2] == ["all", "dev"], installs


def test_demo_places_are_distinct_real_coordinates_marked_simulated():
    identities = [demo_agent(i) for i in range(3 * len(DEMO_LOCATIONS))]
    assert len({i["HOSTCHECK_NAME"] for i in identities}) == len(identities)
    assert len({(p.latitude, p.longitude) for p in DEMO_LOCATIONS}) == len(DEMO_LOCATIONS)
    for identity in identities:
        assert identity["HOSTCHECK_NAME"].endswith(" (simulated)")
        assert identity["HOSTCHECK_LABELS"] == "simulated=true"
        assert -90 <= float(identity["HOSTCHECK_LATITUDE"]) <= 90
        assert -180 <= float(identity["HOSTCHECK_LONGITUDE"]) <= 180
        assert re.fullmatch(r"[A-Z]{2}", identity["HOSTCHECK_COUNTRY"])


@pytest.mark.parametrize(("host", "given", "expected"), [
    ("127.0.0.1", (), (LOOPBACK_TARGETS, True)),
    ("::1", (), (LOOPBACK_TARGETS, True)),
    ("localhost", (), (LOOPBACK_TARGETS, True)),
    ("127.0.0.1", ("10.0.0.0/8",), (("10.0.0.0/8",), False)),
    # A port others can reach must not let them probe this machine's loopback services.
    ("0.0.0.0", (), ((), False)),
    ("192.0.2.10", (), ((), False)),
])
def test_dev_allows_loopback_only_while_its_port_binds_to_loopback(host, given, expected):
    assert allowed_targets(host, given) == expected
