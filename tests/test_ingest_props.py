"""Property: whatever a token-holding agent sends as results, ingestion answers for every item.

A raw agent (tests/ingestion.py, past the agent's sanitiser) sends batches mixing results of its
real tasks, clean or with one defect each, with results of unknown and malformed task ids. For
every batch: every item is acknowledged (the forwarder is never stuck), nothing is INTERNAL or
UNKNOWN and nothing is dropped by the forwarder, each real task sent gets exactly one stored
result, and produced = stored as sent + quarantined, with the defective ones the quarantined ones.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostcheck.services.results.store import QUARANTINED
from hostcheck.v1 import scheduler_pb2
from tests.ingestion import RawAgent, good_result, stored_results

PROPS = settings(max_examples=20, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

clean_text = st.text(st.characters(blacklist_characters="\x00"), max_size=60)
nul_text = st.builds(lambda a, b: f"{a}\x00{b}", clean_text, clean_text)


def _seconds(dt: datetime) -> int:
    return int(dt.timestamp())


# One defect each: what the results service must quarantine.
DEFECTS = {
    "nul_error": lambda r, t: setattr(r, "error", t),
    "nul_code": lambda r, t: setattr(r, "error_code", ("\x00" + t)[:60]),
    "nul_data": lambda r, t: setattr(r.data.tcp, "address", t),
    "nul_header_key": lambda r, t: r.data.http.headers.__setitem__(t, "v"),
    "long_error": lambda r, t: setattr(r, "error", "e" * 5000),
    "long_code": lambda r, t: setattr(r, "error_code", "c" * 65),
    "big_data": lambda r, t: setattr(r.data.http, "body", "b" * 20_000),
    "other_type": lambda r, t: setattr(r.data.http, "status_code", 200),
    "started_far_future": lambda r, t: r.started_at.FromSeconds(_seconds(datetime.now(UTC) + timedelta(days=5))),
    "started_1970": lambda r, t: r.started_at.FromSeconds(3600),
    "started_invalid": lambda r, t: setattr(r.started_at, "seconds", 2**50),
    "bad_nanos": lambda r, t: setattr(r.started_at, "nanos", -7),
    "nan_duration": lambda r, t: setattr(r, "duration_ms", float("nan")),
    "negative_duration": lambda r, t: setattr(r, "duration_ms", -3.0),
}

task_item = st.fixed_dictionaries({
    "defect": st.one_of(st.none(), st.sampled_from(sorted(DEFECTS))),
    "success": st.booleans(),
    "error": clean_text,
    "address": clean_text,
    "nul": nul_text,
})
stray_item = st.one_of(
    st.text(max_size=80).filter(lambda s: not _is_uuid(s)).map(lambda s: ("malformed", s)),
    st.uuids().map(lambda u: ("unknown", str(u))),
)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@pytest.fixture
async def raw(pg_system):
    async with RawAgent(pg_system, "prop") as agent:
        yield agent


@pytest.mark.system_config(scheduler_overrides={"rate_limit": 0})
@PROPS
@given(items=st.lists(task_item, min_size=1, max_size=4), strays=st.lists(stray_item, max_size=3),
       split=st.integers(min_value=0, max_value=7), data=st.data())
async def test_every_item_is_answered_and_none_is_lost(pg_system, raw, caplog, items, strays, split, data):
    caplog.set_level(logging.WARNING)
    tasks = [await raw.task_for() for _ in items]
    results: list[scheduler_pb2.TaskResult] = []
    defective: set[str] = set()
    for task, spec in zip(tasks, items, strict=True):
        r = good_result(task)
        r.success, r.error = spec["success"], spec["error"]
        r.data.tcp.address = spec["address"]
        if spec["defect"]:
            DEFECTS[spec["defect"]](r, spec["nul"])
            defective.add(task.task_id)
        results.append(r)
    results += [scheduler_pb2.TaskResult(task_id=task_id, success=True) for _, task_id in strays]
    order = data.draw(st.permutations(results))
    cut = split % (len(order) + 1)
    for batch in (order[:cut], order[cut:]):
        if batch:
            await raw.send(list(batch))

    sent = {r.task_id for r in order}
    await raw.wait(lambda: sent <= raw.acked, what="every item acknowledged")

    real = [t.task_id for t in tasks]
    stored = stored_results(pg_system, real)
    assert set(stored) == set(real), "each real task has exactly one stored result"
    quarantined = {t for t, (_, code, _, _) in stored.items() if code == QUARANTINED}
    as_sent = set(real) - quarantined
    assert len(real) == len(as_sent) + len(quarantined)
    assert quarantined == defective, {t: stored[t] for t in quarantined ^ defective}
    for task_id in as_sent:
        success, _, _, status = stored[task_id]
        assert status == ("completed" if success else "failed")
    for task_id in quarantined:
        _, _, error, status = stored[task_id]
        assert status == "failed" and "result quarantined" in error
        # Judged by the service, not caught by the database (the store's last resort).
        assert "the database refused" not in error, error
    assert pg_system.scheduler.forwarder.dropped == 0
    bad = [r.getMessage() for r in caplog.records
           if "internal error" in r.getMessage() or "INTERNAL" in r.getMessage() or "UNKNOWN" in r.getMessage()]
    assert not bad, bad
