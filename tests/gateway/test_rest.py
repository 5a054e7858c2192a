"""REST/JSON through Envoy's transcoder, on the seed's paths with snake_case JSON."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from hostcheck.gateway import envoy
from tests.conftest import ADMIN_TOKEN, REGISTRATION_TOKEN
from tests.gateway.conftest import start_gateway, start_gateway_for
from tests.helpers import assert_eventually, free_port


async def create(rest: httpx.AsyncClient, body: dict) -> dict:
    reply = await rest.post("/api/checks", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


async def completed(rest: httpx.AsyncClient, check_id: str) -> dict:
    async def done():
        check = (await rest.get(f"/api/checks/{check_id}")).json()
        return check if check["status"] in ("completed", "failed") else None
    return await assert_eventually(done, timeout=10, message=f"check {check_id} finished")


async def test_create_get_list_delete(rest, tcp_target):
    # The seed's body, as written.
    created = await create(rest, {"target": f"127.0.0.1:{tcp_target}", "checks": ["tcp"]})
    check_id = created["check_id"]
    assert created["check"]["status"] in ("pending", "in_progress")
    assert created["check"]["tasks"][0]["check_type"] == "tcp"

    check = await completed(rest, check_id)
    assert check["status"] == "completed"
    (result,) = check["results"]
    assert result["check_type"] == "tcp" and result["success"] is True
    assert result["duration_ms"] > 0 and result["check_id"] == check_id
    # Typed data under its type's field, snake_case as in the proto.
    assert result["data"]["tcp"]["port"] == tcp_target and result["data"]["tcp"]["address"] == "127.0.0.1"

    listed = (await rest.get("/api/checks", params={"target": f"127.0.0.1:{tcp_target}",
                                                     "status": "completed"})).json()
    assert [c["check_id"] for c in listed["checks"]] == [check_id]
    assert (await rest.get("/api/checks", params={"target": f"127.0.0.1:{tcp_target}",
                                                   "status": "failed"})).json()["checks"] == []

    # An anonymous check: only the admin token deletes it (tests/keyflows.py has the other cases).
    assert (await rest.delete(f"/api/checks/{check_id}")).status_code == 401
    deleted = await rest.delete(f"/api/checks/{check_id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert deleted.status_code == 200 and deleted.json() == {"check_id": check_id}
    gone = await rest.get(f"/api/checks/{check_id}")
    assert gone.status_code == 404 and gone.json()["code"] == 5


async def test_list_is_paged(rest, tcp_target):
    target = f"127.0.0.1:{tcp_target}"
    ids = [(await create(rest, {"target": target, "checks": ["tcp"]}))["check_id"] for _ in range(3)]
    seen, token = [], ""
    for _ in range(5):
        page = (await rest.get("/api/checks", params={"target": target, "page_size": 2, "page_token": token})).json()
        assert len(page["checks"]) <= 2
        seen += [c["check_id"] for c in page["checks"]]
        token = page["next_page_token"]
        if not token:
            break
    assert seen == ids[::-1]  # newest first, each once


async def test_watch_streams_events_as_they_happen(rest, http_target):
    """The tcp task finishes at once, the http one only at its timeout: its event must reach
    us while the check is still running, not with the rest at the end."""
    created = await create(rest, {"target": f"127.0.0.1:{http_target.port}", "checks": ["tcp", "http"],
                                  "http": {"path": "/hang"}, "timeout_ms": 1500})
    check_id = created["check_id"]
    events, seen_while_running = [], False
    async with rest.stream("GET", f"/api/checks/{check_id}/watch") as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if not line.strip():
                continue
            event = json.loads(line)  # NDJSON: one whole event per line
            events.append(event)
            if event["event"] == "task" and event["task"]["check_type"] == "tcp" and event["task"]["status"] != "running":
                # The check is still open while we already hold this event.
                now = (await rest.get(f"/api/checks/{check_id}")).json()
                assert now["status"] in ("pending", "in_progress")
                assert event["task"]["result"]["success"] is True
                seen_while_running = True
    assert seen_while_running
    kinds = [e["event"] for e in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "done", kinds
    tasks = {e["task"]["check_type"]: e["task"] for e in events if e["event"] == "task" and e["task"]["status"] != "running"}
    assert set(tasks) == {"tcp", "http"}
    finished = [i for i, e in enumerate(events) if e["event"] == "task" and e["task"]["status"] != "running"]
    assert finished[0] < len(kinds) - 2  # the tcp event came before the http one
    assert events[-1]["check"]["status"] in ("completed", "failed")
    assert events[-1]["tasks_done"] == events[-1]["tasks_total"] == 2


async def test_agents(rest, gateway_system):
    listed = (await rest.get("/api/agents")).json()
    assert listed["online"] >= 1
    agent = next(a for a in listed["agents"] if a["name"] == "gw-agent")
    assert agent["status"] == "online" and "tcp" in agent["capabilities"]

    one = await rest.get(f"/api/agents/{agent['agent_id']}")
    # The agent itself at the top level, as the seed answers.
    assert one.status_code == 200 and one.json()["agent_id"] == agent["agent_id"] and one.json()["name"] == "gw-agent"
    stats = await rest.get(f"/api/agents/{agent['agent_id']}/stats")
    assert stats.status_code == 200
    assert {"results_total", "results_succeeded", "tasks_timed_out", "by_type"} <= set(stats.json())
    # Counts are JSON numbers, not the strings proto3 JSON makes of 64-bit integers.
    assert all(isinstance(stats.json()[k], int) for k in ("results_total", "results_succeeded", "tasks_timed_out"))
    for row in stats.json()["by_type"]:
        assert all(isinstance(row[k], int) for k in ("total", "succeeded", "failed"))

    missing = await rest.get(f"/api/agents/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["code"] == 5


async def test_register_with_the_registration_header(rest):
    body = {"name": "rest-agent", "country": "DE", "capabilities": ["tcp"]}
    registered = await rest.post("/api/agents/register", json=body,
                                 headers={"X-Registration-Token": REGISTRATION_TOKEN})
    assert registered.status_code == 200, registered.text
    assert registered.json()["api_token"] and uuid.UUID(registered.json()["agent_id"])

    for headers in ({}, {"X-Registration-Token": "wrong"}):
        refused = await rest.post("/api/agents/register", json=body, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["code"] == 16 and "token" in refused.json()["message"]


async def test_health(rest):
    reply = await rest.get("/health")
    assert reply.status_code == 200
    # The gateway's services run on the in-process live state: no Redis, and /health says so.
    assert reply.json() == {"status": "ok", "database": "ok", "redis": "not used (live state in memory)",
                            "live_state": "ok", "live_state_kind": "memory", "active_agents": 1}


async def test_bad_field_is_400_with_the_field(rest):
    reply = await rest.post("/api/checks", json={"target": "127.0.0.1:1", "checks": ["tcpx"]})
    assert reply.status_code == 400
    body = reply.json()
    assert body["code"] == 3
    (detail,) = body["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [v["field"] for v in detail["field_violations"]] == ["checks[0]"]
    assert "tcpx" in detail["field_violations"][0]["description"]


@pytest.mark.parametrize(("send", "field"), [
    ({"content": b'{"target": "127.0.0.1:1", "checks": ['}, ""),           # not JSON
    ({"json": {"target": 5, "checks": ["tcp"]}}, "target"),                # wrong type
    ({"json": {"target": "127.0.0.1:1", "tcp": {"port": -1}}}, "tcp.port"),  # out of range for uint32
])
async def test_bad_json_is_400_json(rest, send, field):
    reply = await rest.post("/api/checks", **send)
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["code"] == 3 and field in body["message"]


async def test_bad_query_parameter_is_400_with_the_field(rest):
    reply = await rest.get("/api/checks", params={"page_size": "many"})
    assert reply.status_code == 400 and reply.json()["code"] == 3
    assert "page_size" in reply.json()["message"]
    reply = await rest.get("/api/checks", params={"status": "sideways"})
    assert reply.status_code == 400
    assert [v["field"] for v in reply.json()["details"][0]["field_violations"]] == ["status"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/nope"),
    ("GET", "/api/checks/x/y/z"),
    ("PUT", "/api/checks"),
    ("GET", "/nope"),
    ("POST", "/hostcheck.v1.ResultsIngestService/OpenCheck"),  # internal: not served at the edge
    ("POST", "/hostcheck.v1.AgentAuthService/VerifyAgentToken"),
])
async def test_unknown_paths_are_404_never_503(rest, method, path):
    reply = await rest.request(method, path, content=b"{}")
    assert reply.status_code == 404
    assert reply.json()["code"] == 5


async def test_unknown_check_is_404(rest):
    reply = await rest.get(f"/api/checks/{uuid.uuid4()}")
    assert reply.status_code == 404 and reply.json()["code"] == 5


async def test_root_is_not_taken_by_the_transcoder(rest):
    # "/" belongs to the browser UI: plain HTTP, never a REST "could not resolve" 404.
    reply = await rest.get("/")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")


@pytest.mark.system_config(scheduler_overrides={"rate_limit": 2})
async def test_rate_limit_is_429(pg_system, tmp_path, tcp_target):
    """Production storage: the limit lives in Redis, shared by every scheduler replica."""
    await pg_system.start_agent(tmp_path, "rl-agent")
    gw = await start_gateway(pg_system, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as rest:
            body = {"target": f"127.0.0.1:{tcp_target}", "checks": ["tcp"]}
            for _ in range(2):
                assert (await rest.post("/api/checks", json=body)).status_code == 200
            # A forged X-Forwarded-For does not make a new client: Envoy appends the address it saw.
            limited = await rest.post("/api/checks", json=body, headers={"X-Forwarded-For": "203.0.113.9"})
            assert limited.status_code == 429
            assert limited.json()["code"] == 8
            (retry,) = limited.json()["details"]
            assert retry["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    finally:
        gw.proc.stop()


async def test_upstream_down_is_503_json(tmp_path):
    """REST callers get JSON even when Envoy answers for a service that is not there."""
    nowhere = envoy.Upstreams(**{name: f"127.0.0.1:{free_port()}" for name in ("scheduler", "results", "registry")})
    gw = await start_gateway_for(nowhere, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as rest:
            reply = await rest.get("/health")
            assert reply.status_code == 503
            assert reply.json()["code"] == 14 and reply.json()["message"]
            assert (await rest.get("/api/nope")).status_code == 404
    finally:
        gw.proc.stop()


async def watch_events(rest: httpx.AsyncClient, check_id: str, *, on_event=None) -> list[dict]:
    """Every event of the check's watch (NDJSON) until the stream ends; `on_event` sees each as it comes."""
    events = []
    async with rest.stream("GET", f"/api/checks/{check_id}/watch", timeout=30) as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if line.strip():
                events.append(json.loads(line))
                if on_event is not None:
                    await on_event(events[-1])
    return events


async def test_the_seeds_flow_returns_the_check_itself(rest, tcp_target):
    """POST, then GET: the check at the top level, its results naming their agent and where it is."""
    created = await create(rest, {"target": f"127.0.0.1:{tcp_target}", "checks": ["tcp"]})
    check = await completed(rest, created["check_id"])
    assert {"check_id", "target", "status", "results"} <= set(check)
    assert check["check_id"] == created["check_id"] and check["target"] == f"127.0.0.1:{tcp_target}"
    (result,) = check["results"]
    assert result["agent"] == "gw-agent" and result["check_type"] == "tcp" and result["success"] is True
    assert {"location", "region", "country", "city"} <= set(result) and "data" in result
    # Outcome counts, as JSON numbers.
    assert (check["tasks_succeeded"], check["tasks_failed"], check["tasks_timed_out"]) == (1, 0, 0)
    assert check["outcome"] == "all_succeeded"
    assert check["tasks"][0]["started_at"]


@pytest.mark.parametrize(("body", "field"), [
    ({"agents": {"country": ["JP"]}}, "agents.country"),
    ({"chekcs": ["tcp"]}, "chekcs"),
    ({"agents": {"agent_ids": [str(uuid.uuid4()) for _ in range(1000)], "limt": 5}}, "agents.limt"),  # ~40 KB
    ({"tcp": {"prot": 80}}, "tcp.prot"),
])
async def test_an_unknown_field_is_400_naming_it(rest, tcp_target, body, field):
    reply = await rest.post("/api/checks", json={"target": f"127.0.0.1:{tcp_target}", "checks": ["tcp"], **body})
    assert reply.status_code == 400, reply.text
    assert reply.json()["code"] == 3
    (detail,) = reply.json()["details"]
    assert [v["field"] for v in detail["field_violations"]] == [field]
    assert field.rsplit(".", 1)[-1] in detail["field_violations"][0]["description"]
    # Bodies spelt right run: JSON names as well as proto names, any key in a map, keys in lists of objects.
    for good in ({"target": f"127.0.0.1:{tcp_target}", "checks": ["tcp"], "agents": {"countries": []},
                  "timeoutMs": 2000},
                 {"target": f"http://127.0.0.1:{tcp_target}/", "checks": ["http"],
                  "http": {"headers": {"X-Odd.Key": "v", "limt": "1"}, "method": "GET"}}):
        reply = await rest.post("/api/checks", json=good)
        assert reply.status_code == 200, reply.text


async def test_registration_refuses_an_unknown_field(rest):
    reply = await rest.post("/api/agents/register", json={"name": "x", "capabilites": ["tcp"]},
                            headers={"X-Registration-Token": REGISTRATION_TOKEN})
    assert reply.status_code == 400
    assert [v["field"] for v in reply.json()["details"][0]["field_violations"]] == ["capabilites"]


def running_task(event: dict) -> dict | None:
    """The running task a watch event shows: in a task event, or in the snapshot's check."""
    tasks = [event["task"]] if event["event"] == "task" else event["check"]["tasks"] if event["event"] == "snapshot" else []
    return next((t for t in tasks if t["status"] == "running"), None)


async def test_watch_of_a_ping_shows_it_running_and_its_progress(rest):
    """A 6-reply ping (one a second): the task goes running (started_at set) at once, then progress
    per reply (at most one every 500 ms), then its result and done."""
    created = await create(rest, {"target": "127.0.0.1", "checks": ["ping"],
                                  "ping": {"count": 6, "interval_ms": 1000}, "timeout_ms": 15000})
    events = await watch_events(rest, created["check_id"])
    kinds = [e["event"] for e in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "done", kinds
    # Running in the snapshot (the agent started it before the watch began) or as a task event.
    running = [i for i, e in enumerate(events) if running_task(e)]
    finished = [i for i, e in enumerate(events) if e["event"] == "task" and e["task"]["status"] == "completed"]
    progress = [i for i, e in enumerate(events) if e["event"] == "progress"]
    assert running and running_task(events[running[0]])["started_at"], kinds
    assert len(progress) >= 3, kinds
    assert running[0] < progress[0] and progress[-1] < kinds.index("done")
    assert not finished or progress[-1] < finished[0]
    steps = [events[i]["progress"] for i in progress]
    assert all(s["check_type"] == "ping" and s["total"] == 6 and s["check_id"] == created["check_id"] for s in steps)
    assert [s["done"] for s in steps] == sorted(s["done"] for s in steps) and steps[-1]["done"] >= 5
    assert "reply" in steps[0]["message"] and "127.0.0.1" in steps[0]["message"]
    done = events[-1]["check"]
    assert done["tasks"][0]["status"] == "completed" and done["outcome"] == "all_succeeded"


async def test_deleting_a_watched_check_sends_deleted(rest):
    created = await create(rest, {"target": "127.0.0.1", "checks": ["ping"],
                                  "ping": {"count": 10, "interval_ms": 1000}, "timeout_ms": 20000})
    check_id = created["check_id"]

    async def delete_once_running(event):
        if running_task(event):
            # An anonymous check: the admin token may delete it.
            deleted = await rest.delete(f"/api/checks/{check_id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert deleted.status_code == 200, deleted.text

    events = await watch_events(rest, check_id, on_event=delete_once_running)
    assert events[-1]["event"] == "deleted" and events[-1]["check_status"] == "deleted"
    assert "done" not in [e["event"] for e in events]


async def test_a_closed_port_reports_0_succeeded(rest):
    closed = free_port()  # nothing listens there
    created = await create(rest, {"target": f"127.0.0.1:{closed}", "checks": ["tcp"]})
    check = await completed(rest, created["check_id"])
    assert (check["tasks_succeeded"], check["tasks_failed"], check["tasks_total"]) == (0, 1, 1)
    assert check["outcome"] == "none_succeeded"
    assert check["results"][0]["success"] is False and check["results"][0]["agent"] == "gw-agent"
    listed = (await rest.get("/api/checks", params={"target": f"127.0.0.1:{closed}"})).json()["checks"]
    assert [(c["tasks_succeeded"], c["tasks_failed"], c["outcome"]) for c in listed] == [(0, 1, "none_succeeded")]
