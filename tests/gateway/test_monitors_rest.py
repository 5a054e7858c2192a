"""Monitors through Envoy (REST/JSON, NDJSON watch, gRPC-Web, the Prometheus scrape, the UI's
paths), against the gateway's system: the services in this process on SQLite + memory with one
agent, running monitors every second at the least (tests/conftest.py).

The issue's body is sent as written (alert.quorum, alert.for_runs, alert.webhook_url); a monitor
belongs to its key (another key gets 404, no key 401); runs are real checks by the agent on a
loopback TCP listener.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hostcheck.gateway import envoy
from hostcheck.v1 import monitors_pb2
from tests.conftest import ADMIN_TOKEN
from tests.gateway import grpcweb
from tests.helpers import assert_eventually


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def new_key(rest: httpx.AsyncClient) -> dict[str, str]:
    reply = await rest.post("/api/keys", json={"name": f"monitors-rest-{uuid.uuid4().hex[:8]}"},
                            headers=bearer(ADMIN_TOKEN))
    assert reply.status_code == 200, reply.text
    return bearer(reply.json()["api_key"])


@pytest.fixture
async def key(rest):
    """A fresh key; its monitors are deleted afterwards (the gateway's agent serves later tests)."""
    headers = await new_key(rest)
    yield headers
    for monitor in (await rest.get("/api/monitors", params={"page_size": 200}, headers=headers)).json()["monitors"]:
        await rest.delete(f"/api/monitors/{monitor['monitor_id']}", headers=headers)


def issue_body(target: str, **extra) -> dict:
    """The issue's POST /api/monitors body."""
    return {"name": "shop tcp", "target": target, "checks": ["tcp"], "agents": {"limit": 3}, "interval_s": 1,
            "timeout_ms": 800, "alert": {"quorum": 1, "for_runs": 2, "webhook_url": "http://127.0.0.1:9/hook"},
            **extra}


async def create(rest: httpx.AsyncClient, headers: dict, body: dict) -> dict:
    reply = await rest.post("/api/monitors", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


def refused(reply: httpx.Response, status: int, field: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert field in reply.json()["message"], reply.text


async def test_create_read_list_edit_pause_resume_delete(rest, key, tcp_target):
    made = await create(rest, key, issue_body(f"127.0.0.1:{tcp_target}"))
    monitor_id = made["monitor_id"]
    assert uuid.UUID(monitor_id) and len(made["webhook_secret"]) == 64
    assert made["alert"] == {"quorum": 1, "for_runs": 2, "webhook_url": "http://127.0.0.1:9/hook"}
    assert made["check"]["target"] == f"127.0.0.1:{tcp_target}" and made["check"]["checks"] == ["tcp"]
    assert made["interval_s"] == 1 and made["state"] == "pending" and made["paused"] is False

    one = await rest.get(f"/api/monitors/{monitor_id}", headers=key)
    assert one.status_code == 200 and one.json()["name"] == "shop tcp"
    assert one.json()["webhook_secret"] == ""  # shown once, when made
    listed = (await rest.get("/api/monitors", headers=key)).json()
    assert [m["monitor_id"] for m in listed["monitors"]] == [monitor_id]

    paused = await rest.patch(f"/api/monitors/{monitor_id}", json={"paused": True}, headers=key)
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True and paused.json()["state"] == "paused"
    assert paused.json()["name"] == "shop tcp"  # only the keys sent change
    resumed = await rest.patch(f"/api/monitors/{monitor_id}", json={"paused": False}, headers=key)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    assert resumed.json()["state"] != "paused"
    renamed = await rest.patch(f"/api/monitors/{monitor_id}", json={"name": "shop", "alert": {"quorum": 1}},
                               headers=key)
    assert renamed.status_code == 200 and renamed.json()["name"] == "shop"

    # Bad values and unknown keys: 400 naming the field; nothing changed.
    refused(await rest.patch(f"/api/monitors/{monitor_id}", json={"interval_s": 999_999}, headers=key),
            400, "interval_s")
    refused(await rest.patch(f"/api/monitors/{monitor_id}", json={"colour": "red"}, headers=key), 400, "colour")
    refused(await rest.patch(f"/api/monitors/{monitor_id}", json={"interval_s": "often"}, headers=key),
            400, "interval_s")
    assert (await rest.get(f"/api/monitors/{monitor_id}", headers=key)).json()["interval_s"] == 1

    # Another key sees nothing of it; no key is 401.
    other = await new_key(rest)
    for method in ("GET", "DELETE"):
        reply = await rest.request(method, f"/api/monitors/{monitor_id}", headers=other)
        assert reply.status_code == 404 and reply.json()["code"] == 5, reply.text
    assert (await rest.patch(f"/api/monitors/{monitor_id}", json={"paused": True}, headers=other)).status_code == 404
    assert (await rest.get("/api/monitors", headers=other)).json()["monitors"] == []
    assert (await rest.get(f"/api/monitors/{monitor_id}")).status_code == 401
    assert (await rest.get("/api/monitors")).status_code == 401
    assert (await rest.post("/api/monitors", json=issue_body(f"127.0.0.1:{tcp_target}"))).status_code == 401
    # The admin token sees every monitor.
    assert (await rest.get(f"/api/monitors/{monitor_id}", headers=bearer(ADMIN_TOKEN))).status_code == 200

    deleted = await rest.delete(f"/api/monitors/{monitor_id}", headers=key)
    assert deleted.status_code == 200 and deleted.json() == {"monitor_id": monitor_id}
    assert (await rest.get(f"/api/monitors/{monitor_id}", headers=key)).status_code == 404


async def test_bad_bodies_name_the_field(rest, key, tcp_target):
    target = f"127.0.0.1:{tcp_target}"
    refused(await rest.post("/api/monitors", json=issue_body(target, alert={"quorom": 2}), headers=key),
            400, "alert.quorom")
    refused(await rest.post("/api/monitors", json=issue_body(target, colour="red"), headers=key), 400, "colour")
    refused(await rest.post("/api/monitors", json=issue_body(target, name=""), headers=key), 400, "name")
    refused(await rest.post("/api/monitors", json=issue_body(target, interval_s="often"), headers=key),
            400, "interval_s")
    refused(await rest.post("/api/monitors", json=issue_body(target, checks=["nope"]), headers=key), 400, "checks")
    assert (await rest.get("/api/monitors", headers=key)).json()["monitors"] == []


async def test_runs_watch_metrics_and_status_page(rest, key, tcp_target):
    slug = f"shop-{uuid.uuid4().hex[:8]}"
    made = await create(rest, key, issue_body(f"127.0.0.1:{tcp_target}", status_slug=slug))
    monitor_id = made["monitor_id"]

    # NDJSON: a snapshot, then the runs as they start and are evaluated.
    events = []
    async with rest.stream("GET", f"/api/monitors/{monitor_id}/watch", headers=key, timeout=30) as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if not line.strip():
                continue
            events.append(json.loads(line))
            if events[-1]["event"] == "run" and events[-1]["run"]["verdict"] == "up":
                break
    assert events[0]["event"] == "snapshot" and events[0]["monitor"]["monitor_id"] == monitor_id
    assert events[0]["monitor"]["webhook_secret"] == ""
    run = events[-1]["run"]
    assert run["agents_total"] == 1 and run["agents_failing"] == 0 and run["agents"][0]["success"] is True

    async def up():
        return (await rest.get(f"/api/monitors/{monitor_id}", headers=key)).json()["state"] == "up"
    await assert_eventually(up, timeout=15, message="monitor up")

    # Prometheus text with blackbox_exporter's names, per agent, parsed by Prometheus' own client.
    scraped = await rest.get("/api/monitors/metrics", headers=key)
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {(s.name, s.labels.get("monitor_id"), s.labels.get("agent"), s.labels.get("state")): s.value
               for family in text_string_to_metric_families(scraped.text) for s in family.samples}
    assert samples[("probe_success", monitor_id, "gw-agent", None)] == 1
    assert samples[("probe_duration_seconds", monitor_id, "gw-agent", None)] > 0
    assert samples[("probe_ip_protocol", monitor_id, "gw-agent", None)] == 4
    assert samples[("hostcheck_monitor_up", monitor_id, None, None)] == 1
    assert samples[("hostcheck_monitor_state", monitor_id, None, "up")] == 1
    assert (await rest.get("/api/monitors/metrics")).status_code == 401
    theirs = await rest.get("/api/monitors/metrics", headers=await new_key(rest))
    assert theirs.status_code == 200 and monitor_id not in theirs.text

    # The public status page: no credentials, none of the monitor's private fields.
    page = await rest.get(f"/api/status/{slug}")
    assert page.status_code == 200, page.text
    (shown,) = page.json()["monitors"]
    assert shown["name"] == "shop tcp" and shown["state"] == "up" and shown["check_types"] == ["tcp"]
    assert not {"monitor_id", "target", "check", "alert", "webhook_secret"} & set(shown)
    assert (await rest.get(f"/api/status/nobody-{uuid.uuid4().hex[:8]}")).status_code == 404

    # gRPC-Web, as the browser watches: the snapshot first.
    request = grpcweb.frame(monitors_pb2.WatchMonitorRequest(monitor_id=monitor_id).SerializeToString())
    async with rest.stream("POST", "/hostcheck.v1.MonitorsService/WatchMonitor", content=request,
                           headers={**grpcweb.HEADERS, **key}, timeout=30) as reply:
        assert reply.status_code == 200
        async for flag, payload in grpcweb.frames(reply.aiter_raw()):
            assert not flag & grpcweb.TRAILERS_FLAG, grpcweb.parse_trailers(payload)
            first = monitors_pb2.WatchMonitorResponse.FromString(payload)
            break
    assert first.event == "snapshot" and first.monitor.state == "up"

    # Deleting ends a watch with `deleted`.
    async with rest.stream("GET", f"/api/monitors/{monitor_id}/watch", headers=key, timeout=30) as reply:
        lines = reply.aiter_lines()
        assert json.loads(await anext(line async for line in lines if line.strip()))["event"] == "snapshot"
        assert (await rest.delete(f"/api/monitors/{monitor_id}", headers=key)).status_code == 200
        kinds = [json.loads(line)["event"] async for line in lines if line.strip()]
    assert kinds[-1] == "deleted", kinds


@pytest.mark.parametrize("path", ["/monitors", "/monitors/new", f"/monitors/{uuid.uuid4()}", "/status/shop"])
async def test_the_ui_answers_its_monitor_pages(rest, path):
    reply = await rest.get(path)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")


def test_watch_monitor_is_a_stream_route_and_the_runs_service_is_not_served():
    """WatchMonitor lives as long as the client wants (like WatchCheck: no route timeout, HTTP/2
    keepalive and stream_idle_timeout end dead ones); the schedulers' MonitorRunsService is internal."""
    config = yaml.safe_load(envoy.render(listen_address="127.0.0.1", listen_port=8080, admin_port=9901,
                                         upstreams=envoy.Upstreams(scheduler="s:1", results="r:2", registry="g:3")))
    (listener,) = config["static_resources"]["listeners"]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]

    def route_of(path: str) -> dict:
        return next(r for r in routes if r["match"].get("path") == path
                    or path.startswith(r["match"].get("prefix", "\0")))

    watch = route_of("/hostcheck.v1.MonitorsService/WatchMonitor")["route"]
    assert watch["cluster"] == "results" and watch["timeout"] == "0s"
    assert watch["max_stream_duration"] == {"grpc_timeout_header_max": "0s"}
    unary = route_of("/hostcheck.v1.MonitorsService/ScrapeMonitors")["route"]
    assert unary == {"cluster": "results", "timeout": "30s"}
    assert "direct_response" in route_of("/hostcheck.v1.MonitorRunsService/ClaimDueRuns")
    transcoder = routes[0]["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]
    assert "hostcheck.v1.MonitorsService" in transcoder["services"]
    assert "hostcheck.v1.MonitorRunsService" not in transcoder["services"]
