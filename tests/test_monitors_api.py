"""Monitors' API and storage (issue 16) on both storages: who may make and see a monitor, every
validation rule by field, edits (update masks, pause and resume), deletion, claiming due runs
exactly once under concurrent claimers, a run's one check, status pages and uptime.

Over gRPC against the results service, with the scheduler's monitor loop off where a test claims
runs itself (services/scheduler/monitors.py claims them otherwise); the claim rules also against
MonitorStore directly. Runs, evaluation and webhooks end to end: tests/test_monitors_*.py.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2

from hostcheck.core.errors import AlreadyExists
from hostcheck.services.results.monitormodels import MonitorRow, MonitorRunRow
from hostcheck.services.results.monitors import (
    MonitorStore,
    MonitorValues,
    aware,
    count_verdict,
    delete_runs_before,
)
from hostcheck.services.results.monitorwatch import monitor_channel
from hostcheck.services.results.store import ResultsStore
from hostcheck.services.storage import db
from hostcheck.v1 import (
    keys_pb2,
    keys_pb2_grpc,
    monitors_pb2,
    monitors_pb2_grpc,
    results_pb2,
    scheduler_pb2,
)
from tests.conftest import ADMIN
from tests.helpers import within

# The scheduler's monitor loop would claim the runs these tests claim themselves, and its runs (no agent
# here: `unknown`) would move states the tests look at.
NO_SCHEDULER_MONITORS = {"monitors": False}
pytestmark = pytest.mark.system_config(scheduler_overrides=NO_SCHEDULER_MONITORS)


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def rest_keys(*paths: str) -> list[tuple[str, str]]:
    """The metadata the gateway's Lua filter adds for a REST body with these keys."""
    return [("x-hostcheck-json-keys", base64.b64encode("\n".join(paths).encode()).decode())]


def monitors(system) -> monitors_pb2_grpc.MonitorsServiceStub:
    return monitors_pb2_grpc.MonitorsServiceStub(system.results_channel)


def runs_api(system) -> monitors_pb2_grpc.MonitorRunsServiceStub:
    return monitors_pb2_grpc.MonitorRunsServiceStub(system.results_channel)


async def new_key(system, name: str = "owner") -> list[tuple[str, str]]:
    made = await keys_pb2_grpc.KeysServiceStub(system.results_channel).CreateKey(
        keys_pb2.CreateKeyRequest(name=name), metadata=ADMIN)
    return bearer(made.api_key)


def tcp_monitor(**fields) -> monitors_pb2.CreateMonitorRequest:
    request = monitors_pb2.CreateMonitorRequest(name="web", target="127.0.0.1:8080", checks=["tcp"], interval_s=60)
    for name, value in fields.items():
        if isinstance(value, dict):
            getattr(request, name).CopyFrom(type(getattr(request, name))(**value))
        elif isinstance(value, list):
            del getattr(request, name)[:]
            getattr(request, name).extend(value)
        else:
            setattr(request, name, value)
    return request


async def refused(call, request, metadata, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request, metadata=metadata)
    assert err.value.code() == code, err.value.details()
    return err.value.details() or ""


def execute(url: str, *statements):
    """Runs statements in one transaction; the last one's rows (if it returns any)."""
    engine = sa.create_engine(db.sync_url(url))
    try:
        with engine.begin() as conn:
            result = None
            for statement in statements:
                result = conn.execute(statement)
            return result.all() if result is not None and result.returns_rows else None
    finally:
        engine.dispose()


async def make_due(system, monitor_id: str, ago_s: float = 1.0) -> None:
    """The monitor's next run due `ago_s` ago (in a thread: the services share this event loop)."""
    table = sa.table("monitors", sa.column("id", sa.Uuid()), sa.column("next_run_at", sa.DateTime(True)))
    at = datetime.now(UTC) - timedelta(seconds=ago_s)
    await asyncio.to_thread(execute, system.database_url,
                            table.update().where(table.c.id == uuid.UUID(monitor_id)).values(next_run_at=at))


# -- the API's shape ---------------------------------------------------------------------------


def test_a_monitors_check_fields_are_create_check_requests():
    """Fields 1-13 of CreateMonitorRequest are CreateCheckRequest's, and every CreateCheckRequest field is
    among them: a check type added to checks is added to monitors too, or this fails."""
    check = scheduler_pb2.CreateCheckRequest.DESCRIPTOR
    monitor = monitors_pb2.CreateMonitorRequest.DESCRIPTOR

    def shape(field):
        return (field.name, field.number, field.type, field.is_repeated,
                field.message_type.full_name if field.message_type else None)

    assert {f.number for f in monitor.fields if f.number < 100} == set(range(1, 14))
    assert sorted(shape(f) for f in monitor.fields if f.number < 100) == sorted(shape(f) for f in check.fields)


# -- create, read, list ------------------------------------------------------------------------


async def test_a_key_or_the_admin_makes_monitors_and_anonymous_callers_are_refused(system):
    owner = await new_key(system)
    api = monitors(system)
    made = await api.CreateMonitor(tcp_monitor(name=" web ", target=" 127.0.0.1:8080 ", checks=["TCP"]),
                                   metadata=owner)
    assert uuid.UUID(made.monitor_id) and made.name == "web" and made.state == "pending"
    assert len(made.webhook_secret) == 64 and int(made.webhook_secret, 16) >= 0
    assert made.check.target == "127.0.0.1:8080" and list(made.check.checks) == ["tcp"]
    assert made.interval_s == 60 and made.alert.quorum == 1 and made.alert.for_runs == 1
    assert made.created_by_key_id and made.HasField("next_run_at") and not made.paused
    assert not made.HasField("uptime_24h") and not made.HasField("last_run")
    # The first run is due within min(interval, 60 s): spread, monitors made together don't run in bursts.
    assert made.next_run_at.ToDatetime(tzinfo=UTC) <= datetime.now(UTC) + timedelta(seconds=60)

    read = await api.ReadMonitor(monitors_pb2.ReadMonitorRequest(monitor_id=made.monitor_id), metadata=owner)
    assert read.webhook_secret == "" and read.monitor_id == made.monitor_id and read.check == made.check

    by_admin = await api.CreateMonitor(tcp_monitor(name="admin's", paused=True), metadata=ADMIN)
    assert by_admin.created_by_key_id == "" and by_admin.state == "paused" and not by_admin.HasField("next_run_at")

    for call, request in [(api.CreateMonitor, tcp_monitor()), (api.ListMonitors, monitors_pb2.ListMonitorsRequest()),
                          (api.ReadMonitor, monitors_pb2.ReadMonitorRequest(monitor_id=made.monitor_id)),
                          (api.DeleteMonitor, monitors_pb2.DeleteMonitorRequest(monitor_id=made.monitor_id)),
                          (api.ScrapeMonitors, monitors_pb2.ScrapeMonitorsRequest())]:
        assert "API key" in await refused(call, request, None, grpc.StatusCode.UNAUTHENTICATED)
    # The admin lists every monitor, a key its own.
    listed = await api.ListMonitors(monitors_pb2.ListMonitorsRequest(), metadata=ADMIN)
    assert [m.monitor_id for m in listed.monitors] == [by_admin.monitor_id, made.monitor_id]
    assert all(m.webhook_secret == "" for m in listed.monitors)
    mine = await api.ListMonitors(monitors_pb2.ListMonitorsRequest(), metadata=owner)
    assert [m.monitor_id for m in mine.monitors] == [made.monitor_id]


BAD_MONITORS = [
    (tcp_monitor(name=""), "name"),
    (tcp_monitor(name="   "), "name"),
    (tcp_monitor(name="x" * 101), "name"),
    (tcp_monitor(name="a\x00b"), "name"),
    (tcp_monitor(interval_s=0, timeout_ms=100, target="127.0.0.1:1"), None),  # 0: the default, fine
    (tcp_monitor(interval_s=86_401), "interval_s"),
    (tcp_monitor(alert={"quorum": 101}), "alert.quorum"),
    (tcp_monitor(alert={"quorum": 11}), "alert.quorum"),  # more than the selector's 10 agents
    (tcp_monitor(alert={"quorum": 3}, agents={"limit": 2}), "alert.quorum"),
    (tcp_monitor(alert={"for_runs": 101}), "alert.for_runs"),
    (tcp_monitor(interval_s=2), "timeout_ms"),  # tcp's default 5 s timeout is not below 2 s
    (tcp_monitor(interval_s=2, timeout_ms=2000), "timeout_ms"),
    (tcp_monitor(alert={"webhook_url": "ftp://example.com/hook"}), "alert.webhook_url"),
    (tcp_monitor(alert={"webhook_url": "http://"}), "alert.webhook_url"),
    (tcp_monitor(alert={"webhook_url": "https://example.com/" + "x" * 2048}), "alert.webhook_url"),
    (tcp_monitor(alert={"webhook_url": "http://169.254.169.254/latest"}), "alert.webhook_url"),
    (tcp_monitor(alert={"webhook_url": "http://10.0.0.1:8080/hook"}), "alert.webhook_url"),
    (tcp_monitor(alert={"webhook_url": "http://example.com:99999/"}), "alert.webhook_url"),
    (tcp_monitor(alert={"webhook_url": "http://exa mple.com/"}), "alert.webhook_url"),
    (tcp_monitor(status_slug="Upper"), "status_slug"),
    (tcp_monitor(status_slug="-dash"), "status_slug"),
    (tcp_monitor(status_slug="x" * 64), "status_slug"),
    # The check's own rules, with the check's field names.
    (tcp_monitor(target=""), "target"),
    (tcp_monitor(target="10.1.2.3:80"), "target"),
    (tcp_monitor(checks=[]), "checks"),
    (tcp_monitor(checks=["nope"]), "checks[0]"),
    (tcp_monitor(target="127.0.0.1"), "tcp.port"),
    (tcp_monitor(http={"method": "GET"}), "http"),
]


async def test_every_rule_refuses_with_the_field_named_and_nothing_is_stored(system):
    owner = await new_key(system)
    api = monitors(system)
    for request, field in BAD_MONITORS:
        if field is None:
            made = await api.CreateMonitor(request, metadata=owner)
            assert made.interval_s == 60
            await api.DeleteMonitor(monitors_pb2.DeleteMonitorRequest(monitor_id=made.monitor_id), metadata=owner)
            continue
        details = await refused(api.CreateMonitor, request, owner, grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith(f"{field}:") or f"; {field}:" in details, (field, details)
    # Several at once are all named.
    details = await refused(api.CreateMonitor, tcp_monitor(name="", interval_s=86_401, status_slug="A"), owner,
                            grpc.StatusCode.INVALID_ARGUMENT)
    assert all(f in details for f in ("name:", "interval_s:", "status_slug:"))
    # A REST body with a key a monitor lacks (the gateway lists the body's keys).
    details = await refused(api.CreateMonitor, tcp_monitor(), [*owner, *rest_keys("name", "alert.quorom")],
                            grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("alert.quorom:")
    assert (await api.ListMonitors(monitors_pb2.ListMonitorsRequest(), metadata=owner)).monitors == []


@pytest.mark.system_config(results_overrides={"monitors_per_key": 2, "monitor_min_interval_s": 10},
                           scheduler_overrides=NO_SCHEDULER_MONITORS)
async def test_limits_per_key_and_the_minimum_interval(system):
    owner = await new_key(system)
    api = monitors(system)
    details = await refused(api.CreateMonitor, tcp_monitor(interval_s=9, timeout_ms=1000), owner,
                            grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("interval_s: must be 10-86400")
    for _ in range(2):
        await api.CreateMonitor(tcp_monitor(interval_s=10, timeout_ms=1000), metadata=owner)
    await refused(api.CreateMonitor, tcp_monitor(), owner, grpc.StatusCode.RESOURCE_EXHAUSTED)
    # Another key has its own count; the admin has none.
    await api.CreateMonitor(tcp_monitor(), metadata=await new_key(system, "other"))
    for _ in range(3):
        await api.CreateMonitor(tcp_monitor(), metadata=ADMIN)


async def test_another_key_finds_nothing_of_a_monitor(system):
    owner, other = await new_key(system), await new_key(system, "other")
    api = monitors(system)
    made = await api.CreateMonitor(tcp_monitor(), metadata=owner)
    mid = made.monitor_id
    for call, request in [
            (api.ReadMonitor, monitors_pb2.ReadMonitorRequest(monitor_id=mid)),
            (api.UpdateMonitor, monitors_pb2.UpdateMonitorRequest(monitor_id=mid, monitor=tcp_monitor(name="x"))),
            (api.DeleteMonitor, monitors_pb2.DeleteMonitorRequest(monitor_id=mid)),
            (api.ListMonitorRuns, monitors_pb2.ListMonitorRunsRequest(monitor_id=mid)),
            (api.ListMonitorEvents, monitors_pb2.ListMonitorEventsRequest(monitor_id=mid))]:
        assert mid in await refused(call, request, other, grpc.StatusCode.NOT_FOUND)
    assert (await api.ListMonitors(monitors_pb2.ListMonitorsRequest(), metadata=other)).monitors == []
    # Unchanged, and the admin sees and edits it.
    assert (await api.ReadMonitor(monitors_pb2.ReadMonitorRequest(monitor_id=mid), metadata=owner)).name == "web"
    edited = await api.UpdateMonitor(monitors_pb2.UpdateMonitorRequest(
        monitor_id=mid, monitor=tcp_monitor(name="by admin")), metadata=ADMIN)
    assert edited.name == "by admin" and edited.created_by_key_id == made.created_by_key_id
    await refused(api.ReadMonitor, monitors_pb2.ReadMonitorRequest(monitor_id="nope"), owner,
                  grpc.StatusCode.INVALID_ARGUMENT)


async def test_listing_pages_newest_first(system):
    owner = await new_key(system)
    api = monitors(system)
    made = [(await api.CreateMonitor(tcp_monitor(name=f"m{i}"), metadata=owner)).monitor_id for i in range(5)]
    seen, token = [], ""
    while True:
        page = await api.ListMonitors(monitors_pb2.ListMonitorsRequest(page_size=2, page_token=token), metadata=owner)
        assert len(page.monitors) <= 2
        seen += [m.monitor_id for m in page.monitors]
        token = page.next_page_token
        if not token:
            break
    assert seen == made[::-1]
    assert [m.name for m in (await api.ListMonitors(monitors_pb2.ListMonitorsRequest(state="pending"),
                                                    metadata=owner)).monitors] == [f"m{i}" for i in range(4, -1, -1)]
    assert (await api.ListMonitors(monitors_pb2.ListMonitorsRequest(state="down"), metadata=owner)).monitors == []
    for request, field in [(monitors_pb2.ListMonitorsRequest(page_size=201), "page_size"),
                           (monitors_pb2.ListMonitorsRequest(page_token="garbage"), "page_token"),
                           (monitors_pb2.ListMonitorsRequest(state="sideways"), "state")]:
        assert (await refused(api.ListMonitors, request, owner, grpc.StatusCode.INVALID_ARGUMENT)).startswith(field)


async def test_a_scrape_shows_the_callers_monitors(system):
    owner, other = await new_key(system), await new_key(system, "other")
    api = monitors(system)
    mine = await api.CreateMonitor(tcp_monitor(name="mine"), metadata=owner)
    theirs = await api.CreateMonitor(tcp_monitor(name="theirs"), metadata=other)
    body = await api.ScrapeMonitors(monitors_pb2.ScrapeMonitorsRequest(), metadata=owner)
    assert body.content_type.startswith("text/plain; version=0.0.4")
    assert mine.monitor_id in body.data.decode() and theirs.monitor_id not in body.data.decode()
    everything = (await api.ScrapeMonitors(monitors_pb2.ScrapeMonitorsRequest(), metadata=ADMIN)).data.decode()
    assert mine.monitor_id in everything and theirs.monitor_id in everything


# -- edits -------------------------------------------------------------------------------------


async def test_edits_change_only_the_fields_named(system):
    owner = await new_key(system)
    api = monitors(system)
    made = await api.CreateMonitor(tcp_monitor(alert={"quorum": 2, "for_runs": 3}, status_slug="mine"),
                                   metadata=owner)
    mid = made.monitor_id

    async def update(metadata=(), **kwargs):
        return await api.UpdateMonitor(monitors_pb2.UpdateMonitorRequest(monitor_id=mid, **kwargs),
                                       metadata=[*owner, *metadata])

    # gRPC with a mask: only alert.for_runs changes, although the sent monitor has other values.
    edited = await update(monitor=tcp_monitor(name="ignored", alert={"for_runs": 5}),
                          update_mask=field_mask_pb2.FieldMask(paths=["alert.for_runs"]))
    assert (edited.name, edited.alert.quorum, edited.alert.for_runs, edited.status_slug) == ("web", 2, 5, "mine")
    # gRPC without a mask: every field set.
    edited = await update(monitor=monitors_pb2.CreateMonitorRequest(name="renamed", interval_s=30))
    assert (edited.name, edited.interval_s, edited.alert.for_runs) == ("renamed", 30, 5)
    # REST: the body's keys (JSON names too); a key sent empty clears the field.
    edited = await update(rest_keys("status_slug", "tcp.port", "timeoutMs"),
                          monitor=monitors_pb2.CreateMonitorRequest(tcp={"port": 9090}, timeout_ms=1500))
    assert edited.status_slug == "" and edited.check.tcp.port == 9090 and edited.check.timeout_ms == 1500
    # An object's keys are merged: {"alert": {"quorum": 1}} keeps for_runs.
    edited = await update(rest_keys("alert", "alert.quorum"), monitor=monitors_pb2.CreateMonitorRequest(
        alert={"quorum": 1}))
    assert (edited.alert.quorum, edited.alert.for_runs) == (1, 5)
    assert edited.check.target == "127.0.0.1:8080" and edited.webhook_secret == ""
    # The check is re-validated whole; a refused edit names the field and writes nothing.
    details = await refused(api.UpdateMonitor, monitors_pb2.UpdateMonitorRequest(
        monitor_id=mid, monitor=monitors_pb2.CreateMonitorRequest(target="10.0.0.1", name="x"),
        update_mask=field_mask_pb2.FieldMask(paths=["target", "name"])), owner, grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("monitor.target:")
    details = await refused(api.UpdateMonitor, monitors_pb2.UpdateMonitorRequest(
        monitor_id=mid, monitor=monitors_pb2.CreateMonitorRequest(interval_s=1)), owner,
        grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("monitor.timeout_ms:")  # 1.5 s is not below 1 s
    details = await refused(api.UpdateMonitor, monitors_pb2.UpdateMonitorRequest(monitor_id=mid),
                            [*owner, *rest_keys("name", "intervall")], grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("monitor.intervall:")
    details = await refused(api.UpdateMonitor, monitors_pb2.UpdateMonitorRequest(
        monitor_id=mid, update_mask=field_mask_pb2.FieldMask(paths=["nope"])), owner, grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("update_mask:")
    now = await api.ReadMonitor(monitors_pb2.ReadMonitorRequest(monitor_id=mid), metadata=owner)
    assert (now.name, now.check.target, now.interval_s) == ("renamed", "127.0.0.1:8080", 30)
    # A new webhook secret, shown once.
    rotated = await update(rotate_webhook_secret=True)
    assert len(rotated.webhook_secret) == 64 and rotated.webhook_secret != made.webhook_secret


async def test_pause_and_resume_move_the_state_with_an_event_each(system):
    owner = await new_key(system)
    api = monitors(system)
    made = await api.CreateMonitor(tcp_monitor(), metadata=owner)
    mid = made.monitor_id
    async with system.results.live.subscribe(monitor_channel(mid)) as sub:
        paused = await api.UpdateMonitor(monitors_pb2.UpdateMonitorRequest(
            monitor_id=mid, monitor=monitors_pb2.CreateMonitorRequest(paused=True)), metadata=owner)
        assert paused.paused and paused.state == "paused" and not paused.HasField("next_run_at")
        event = monitors_pb2.WatchMonitorResponse.FromString(await sub.get(timeout=within(5)))
        assert event.event == "state" and event.monitor.state == "paused"
        assert (event.change.from_state, event.change.to_state, event.change.notification) == ("pending", "paused",
                                                                                                "none")
        # REST: {"paused": false} (a gRPC client names it in update_mask: false is not "set").
        resumed = await api.UpdateMonitor(monitors_pb2.UpdateMonitorRequest(
            monitor_id=mid, monitor=monitors_pb2.CreateMonitorRequest(paused=False)),
            metadata=[*owner, *rest_keys("paused")])
        assert not resumed.paused and resumed.state == "pending" and resumed.HasField("next_run_at")
        assert resumed.next_run_at.ToDatetime(tzinfo=UTC) <= datetime.now(UTC) + timedelta(seconds=60)
        event = monitors_pb2.WatchMonitorResponse.FromString(await sub.get(timeout=within(5)))
        assert (event.change.from_state, event.change.to_state) == ("paused", "pending")
    events = (await api.ListMonitorEvents(monitors_pb2.ListMonitorEventsRequest(monitor_id=mid),
                                          metadata=owner)).events
    assert [(e.from_state, e.to_state, e.run_seq, e.notification) for e in events] == [
        ("paused", "pending", 0, "none"), ("pending", "paused", 0, "none")]
    # Pausing a paused monitor changes nothing.
    await api.UpdateMonitor(monitors_pb2.UpdateMonitorRequest(
        monitor_id=mid, monitor=monitors_pb2.CreateMonitorRequest(name="again")), metadata=owner)
    assert len((await api.ListMonitorEvents(monitors_pb2.ListMonitorEventsRequest(monitor_id=mid),
                                            metadata=owner)).events) == 2


# -- runs --------------------------------------------------------------------------------------


async def test_a_claimed_run_opens_one_check_listed_as_the_monitors(system):
    owner = await new_key(system)
    api = monitors(system)
    made = await api.CreateMonitor(tcp_monitor(interval_s=60, target="127.0.0.1:1"), metadata=owner)
    mid = made.monitor_id
    await make_due(system, mid)
    claimed = (await runs_api(system).ClaimDueRuns(monitors_pb2.ClaimDueRunsRequest(scheduler_id="t", limit=10))).runs
    assert [(r.monitor_id, r.seq) for r in claimed] == [(mid, 1)]
    run = claimed[0]
    assert run.check.target == "127.0.0.1:1" and list(run.check.checks) == ["tcp"]
    assert run.created_by_key_id == made.created_by_key_id
    # Nothing more is due: the next run is an interval later.
    again = await runs_api(system).ClaimDueRuns(monitors_pb2.ClaimDueRunsRequest(scheduler_id="t", limit=10))
    assert again.runs == [] and again.next_due_at.ToDatetime(tzinfo=UTC) > datetime.now(UTC) + timedelta(seconds=50)

    opening = results_pb2.OpenCheckRequest(check_id=run.check_id, request=run.check, client_ip="",
                                           created_by_key_id=run.created_by_key_id, monitor_id=mid,
                                           monitor_run=run.seq)
    async with system.results.live.subscribe(monitor_channel(mid)) as sub:
        opened = await system.ingest.OpenCheck(opening)
        event = monitors_pb2.WatchMonitorResponse.FromString(await sub.get(timeout=within(5)))
    assert (opened.check.monitor_id, opened.check.monitor_run) == (mid, 1)
    assert event.event == "run" and event.run.seq == 1 and event.run.verdict == "running"
    assert event.run.HasField("started_at") and event.run.check_id == run.check_id
    await refused(system.ingest.OpenCheck, opening, None, grpc.StatusCode.ALREADY_EXISTS)
    other = results_pb2.OpenCheckRequest()
    other.CopyFrom(opening)
    other.check_id = str(uuid.uuid4())
    await refused(system.ingest.OpenCheck, other, None, grpc.StatusCode.ALREADY_EXISTS)
    other.monitor_run = 2
    await refused(system.ingest.OpenCheck, other, None, grpc.StatusCode.NOT_FOUND)

    listed = await system.checks.ListChecks(results_pb2.ListChecksRequest(monitor_id=mid), metadata=owner)
    assert [(c.check_id, c.monitor_id, c.monitor_run) for c in listed.checks] == [(run.check_id, mid, 1)]
    assert (await system.checks.ListChecks(results_pb2.ListChecksRequest(monitor_id=str(uuid.uuid4())),
                                           metadata=owner)).checks == []
    assert (await system.checks.ListChecks(results_pb2.ListChecksRequest(monitor_id=mid),
                                           metadata=await new_key(system, "other"))).checks == []
    runs = (await api.ListMonitorRuns(monitors_pb2.ListMonitorRunsRequest(monitor_id=mid), metadata=owner)).runs
    assert [(r.seq, r.check_id) for r in runs] == [(1, run.check_id)] and runs[0].HasField("started_at")
    assert (await api.ReadMonitor(monitors_pb2.ReadMonitorRequest(monitor_id=mid), metadata=owner)).runs_total == 1


async def test_a_run_that_cannot_start_ends_unknown_with_the_reason(system):
    owner = await new_key(system)
    made = await monitors(system).CreateMonitor(tcp_monitor(), metadata=owner)
    await make_due(system, made.monitor_id)
    run = (await runs_api(system).ClaimDueRuns(monitors_pb2.ClaimDueRunsRequest(scheduler_id="t", limit=1))).runs[0]
    await runs_api(system).ReportRunNotStarted(monitors_pb2.ReportRunNotStartedRequest(
        monitor_id=made.monitor_id, seq=run.seq, code="FAILED_PRECONDITION", reason="no agent online matches"))
    runs = (await monitors(system).ListMonitorRuns(monitors_pb2.ListMonitorRunsRequest(
        monitor_id=made.monitor_id), metadata=owner)).runs
    assert runs[0].verdict == "unknown" and runs[0].reason == "FAILED_PRECONDITION: no agent online matches"
    # Its check can no longer be opened.
    await refused(system.ingest.OpenCheck, results_pb2.OpenCheckRequest(
        check_id=run.check_id, request=run.check, monitor_id=made.monitor_id, monitor_run=run.seq), None,
        grpc.StatusCode.FAILED_PRECONDITION)
    await refused(runs_api(system).ClaimDueRuns, monitors_pb2.ClaimDueRunsRequest(limit=0), None,
                  grpc.StatusCode.INVALID_ARGUMENT)


async def test_deleting_a_monitor_removes_its_runs_and_events_and_tells_watchers(system):
    owner = await new_key(system)
    api = monitors(system)
    made = await api.CreateMonitor(tcp_monitor(), metadata=owner)
    mid = made.monitor_id
    await make_due(system, mid)
    run = (await runs_api(system).ClaimDueRuns(monitors_pb2.ClaimDueRunsRequest(scheduler_id="t", limit=1))).runs[0]
    await system.ingest.OpenCheck(results_pb2.OpenCheckRequest(
        check_id=run.check_id, request=run.check, created_by_key_id=run.created_by_key_id, monitor_id=mid,
        monitor_run=run.seq))
    await api.UpdateMonitor(monitors_pb2.UpdateMonitorRequest(
        monitor_id=mid, monitor=monitors_pb2.CreateMonitorRequest(paused=True)), metadata=owner)
    async with system.results.live.subscribe(monitor_channel(mid)) as sub:
        deleted = await api.DeleteMonitor(monitors_pb2.DeleteMonitorRequest(monitor_id=mid), metadata=owner)
        event = monitors_pb2.WatchMonitorResponse.FromString(await sub.get(timeout=within(5)))
    assert deleted.monitor_id == mid and event.event == "deleted"
    counts = await asyncio.to_thread(execute, system.database_url, sa.text(
        "SELECT (SELECT count(*) FROM monitors), (SELECT count(*) FROM monitor_runs), "
        "(SELECT count(*) FROM monitor_events), (SELECT count(*) FROM checks)"))
    assert tuple(counts[0]) == (0, 0, 0, 1)  # its check stays (retention removes it)
    await refused(api.ReadMonitor, monitors_pb2.ReadMonitorRequest(monitor_id=mid), owner, grpc.StatusCode.NOT_FOUND)
    await refused(api.DeleteMonitor, monitors_pb2.DeleteMonitorRequest(monitor_id=mid), owner,
                  grpc.StatusCode.NOT_FOUND)


# -- status pages ------------------------------------------------------------------------------


async def test_a_status_page_shows_public_fields_only_and_belongs_to_one_owner(system):
    owner, other = await new_key(system), await new_key(system, "other")
    api = monitors(system)
    await api.CreateMonitor(tcp_monitor(name="api", status_slug="acme", alert={"webhook_url": "http://127.0.0.1:9/h"}),
                            metadata=owner)
    await api.CreateMonitor(tcp_monitor(name="web", status_slug="acme", checks=["tcp", "http"]), metadata=owner)
    assert "taken" in await refused(api.CreateMonitor, tcp_monitor(status_slug="acme"), other,
                                    grpc.StatusCode.ALREADY_EXISTS)
    page = await api.ReadStatusPage(monitors_pb2.ReadStatusPageRequest(slug="acme"))  # no credentials
    assert page.slug == "acme" and [(m.name, m.state, list(m.check_types)) for m in page.monitors] == [
        ("api", "pending", ["tcp"]), ("web", "pending", ["tcp", "http"])]
    assert {f.name for m in page.monitors for f, _ in m.ListFields()} <= {
        f.name for f in monitors_pb2.PublicMonitor.DESCRIPTOR.fields}
    assert b"127.0.0.1" not in page.SerializeToString()  # no target, no webhook
    await refused(api.ReadStatusPage, monitors_pb2.ReadStatusPageRequest(slug="nobody"), None,
                  grpc.StatusCode.NOT_FOUND)
    await refused(api.ReadStatusPage, monitors_pb2.ReadStatusPageRequest(slug="../x"), None,
                  grpc.StatusCode.NOT_FOUND)


# -- MonitorStore directly: claims and uptime ----------------------------------------------------


@pytest.fixture
def store(migrated_engine):
    """A MonitorStore on a migrated database of each kind."""
    return MonitorStore(db.sessionmaker(migrated_engine))


def values(**fields) -> MonitorValues:
    base = {"name": "m", "target": "127.0.0.1:80", "check_types": ["tcp"],
            "spec": {"target": "127.0.0.1:80", "checks": ["tcp"]}, "interval_s": 10, "quorum": 1, "for_runs": 1,
            "webhook_url": "", "paused": False, "status_slug": None}
    return MonitorValues(**{**base, **fields})


async def set_next_run(store: MonitorStore, monitor_id: uuid.UUID, at: datetime) -> None:
    async with store.sessions() as session, session.begin():
        await session.execute(sa.update(MonitorRow).where(MonitorRow.id == monitor_id).values(next_run_at=at))


async def test_concurrent_claimers_claim_each_run_once(store):
    now = datetime.now(UTC)
    made = [await store.create(values(name=f"m{i}"), owner=None, per_key=None) for i in range(40)]
    for i, m in enumerate(made):
        await set_next_run(store, m.id, now - timedelta(seconds=i % 7))
    paused = await store.create(values(name="paused", paused=True), owner=None, per_key=None)
    await set_next_run(store, paused.id, now - timedelta(seconds=1))

    async def claim(n: int):
        return await store.claim_due_runs(f"s{n}", 3, now=now)

    claimed = []
    while True:
        rounds = await asyncio.gather(*(claim(n) for n in range(8)))
        got = [c for runs, _ in rounds for c in runs]
        if not got:
            break
        claimed += got
    assert sorted((c.monitor.id, c.run.seq) for c in claimed) == sorted((m.id, 1) for m in made)
    assert len({c.run.check_id for c in claimed}) == len(made)
    async with store.sessions() as session:
        rows = (await session.execute(sa.select(MonitorRunRow.monitor_id, MonitorRunRow.seq,
                                                MonitorRunRow.scheduled_at))).all()
        seqs = dict((await session.execute(sa.select(MonitorRow.id, MonitorRow.run_seq))).all())
    assert sorted((m, s) for m, s, _ in rows) == sorted((m.id, 1) for m in made)
    assert seqs[paused.id] == 0 and all(seqs[m.id] == 1 for m in made)
    # Each was scheduled when it was due; the next run is an interval after that.
    _, next_due = await store.claim_due_runs("late", 100, now=now)
    assert next_due is not None and now + timedelta(seconds=10 - 6) <= next_due <= now + timedelta(seconds=10)


async def test_a_late_monitor_skips_the_runs_it_missed(store):
    now = datetime.now(UTC)
    on_time = await store.create(values(name="on time"), owner=None, per_key=None)
    late = await store.create(values(name="late"), owner=None, per_key=None)
    await set_next_run(store, on_time.id, now - timedelta(seconds=3))
    await set_next_run(store, late.id, now - timedelta(seconds=95))  # 9 intervals missed
    claimed, _ = await store.claim_due_runs("s", 10, now=now)
    assert {c.monitor.id: c.run.scheduled_at for c in claimed} == {
        on_time.id: now - timedelta(seconds=3), late.id: now - timedelta(seconds=95)}
    async with store.sessions() as session:
        nexts = {m: aware(at) for m, at in (await session.execute(sa.select(MonitorRow.id, MonitorRow.next_run_at)))}
    assert nexts[on_time.id] == now + timedelta(seconds=7)
    assert nexts[late.id] == now + timedelta(seconds=10)  # not a burst of 9 catch-up runs
    assert (await store.claim_due_runs("s", 10, now=now))[0] == []
    claimed, _ = await store.claim_due_runs("s", 10, now=now + timedelta(seconds=10))
    assert sorted((c.monitor.name, c.run.seq) for c in claimed) == [("late", 2), ("on time", 2)]


async def test_a_runs_check_opens_once(store):
    results = ResultsStore(store.sessions)
    monitor = await store.create(values(), owner=None, per_key=None)
    await set_next_run(store, monitor.id, datetime.now(UTC) - timedelta(seconds=1))
    (run,), _ = await store.claim_due_runs("s", 1)

    async def open_it(check_id: uuid.UUID):
        return await results.open_check(check_id=check_id, target="127.0.0.1:80", check_types=["tcp"], request={},
                                        tasks=[], deadline=datetime.now(UTC) + timedelta(seconds=30), client_ip="",
                                        monitor_id=monitor.id, monitor_run=run.run.seq)

    outcomes = await asyncio.gather(*(open_it(run.run.check_id) for _ in range(4)), return_exceptions=True)
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1, outcomes
    assert all(isinstance(o, AlreadyExists) for o in outcomes if isinstance(o, BaseException)), outcomes


async def test_uptime_counts_up_and_degraded_among_judged_runs(store):
    now = datetime.now(UTC)
    monitor = await store.create(values(), owner=None, per_key=None)
    empty = await store.create(values(name="no runs"), owner=None, per_key=None)
    verdicts = [("up", 1), ("degraded", 2), ("failing", 3), ("unknown", 4), ("missed", 5), ("running", 6),
                ("failing", 72), ("up", 8 * 24)]  # (verdict, hours ago)
    async with store.sessions() as session, session.begin():
        for seq, (verdict, hours) in enumerate(verdicts, start=1):
            session.add(MonitorRunRow(monitor_id=monitor.id, seq=seq, check_id=uuid.uuid4(),
                                      scheduled_at=now - timedelta(hours=hours), verdict=verdict,
                                      evaluated=verdict != "running"))
            # As the evaluator does with each verdict it stores (uptime reads the hourly rollup).
            await count_verdict(session, monitor.id, now - timedelta(hours=hours), verdict)
    uptime = await store.uptime([monitor.id, empty.id], now=now)
    assert uptime[monitor.id].day == pytest.approx(2 / 3) and uptime[monitor.id].week == pytest.approx(2 / 4)
    assert empty.id not in uptime


async def test_retention_deletes_old_runs_and_keeps_the_monitor(store):
    now = datetime.now(UTC)
    monitor = await store.create(values(), owner=None, per_key=None)
    async with store.sessions() as session, session.begin():
        for seq, (days, evaluated) in enumerate([(40, True), (31, False), (29, True), (1, True)], start=1):
            session.add(MonitorRunRow(monitor_id=monitor.id, seq=seq, check_id=uuid.uuid4(),
                                      scheduled_at=now - timedelta(days=days), verdict="up", evaluated=evaluated))
    assert await delete_runs_before(store.sessions, now - timedelta(days=30), batch=1) == 2
    async with store.sessions() as session:
        assert list((await session.scalars(sa.select(MonitorRunRow.seq).order_by(MonitorRunRow.seq))).all()) == [3, 4]
    assert (await store.get(monitor.id)).name == "m"
