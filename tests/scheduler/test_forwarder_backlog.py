"""The forwarder in a burst whose every batch touches the same checks (issue 17, fourth pass): once
max_batch results are held behind busy checks, the held ones go in the free slot beside the busy
call instead of waiting for it, so the results service judges and encodes one call while the other
writes. Below that, a busy check's results still wait for its call (tests/scheduler/test_forwarder.py)."""

from __future__ import annotations

import asyncio
import contextlib

from hostcheck.services.scheduler.forwarder import ResultForwarder
from tests.helpers import assert_eventually
from tests.scheduler.test_forwarder import ResultsIngest, acked, of_check, session


async def test_a_full_backlog_held_behind_busy_checks_goes_beside_their_call(live):
    ingest = ResultsIngest()
    forwarder = ResultForwarder(ingest, live, max_batch=4)
    runner = asyncio.create_task(forwarder.run())
    try:
        agents = [session() for _ in range(3)]
        mine = [[f"{c}{i}" for c in "ABCD"] for i in range(3)]
        ingest.gate.clear()
        forwarder.submit(agents[0].agent_id, [r for t in mine[0] for r in of_check(t[0], t)], agents[0])
        await assert_eventually(lambda: len(ingest.calls) == 1, timeout=5, message="first call out")
        for i in (1, 2):
            forwarder.submit(agents[i].agent_id, [r for t in mine[i] for r in of_check(t[0], t)], agents[i])
        # Agent 1's four results fill the backlog held behind A-D: they go now, beside the first call.
        await assert_eventually(lambda: ingest.running == 2, timeout=5, message="second call not out")
        assert ingest.calls == mine[:2]
        assert forwarder.pending() == 4  # agent 2's, in arrival order until a call ends
        ingest.gate.set()
        await asyncio.wait_for(forwarder.join(), 5)
        assert ingest.calls == mine and ingest.most_running == 2
        for i in range(3):
            assert await acked(agents[i]) == mine[i]
            assert agents[i].outbox.empty(), "one ack per agent"
        assert not forwarder._busy and not forwarder._held and not forwarder._ready and not forwarder._parked
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_a_backlog_below_the_batch_still_waits_for_its_checks_call(live):
    ingest = ResultsIngest()
    forwarder = ResultForwarder(ingest, live, max_batch=4)
    runner = asyncio.create_task(forwarder.run())
    try:
        s = session()
        ingest.gate.clear()
        forwarder.submit(s.agent_id, of_check("A", "a1"), s)
        await assert_eventually(lambda: len(ingest.calls) == 1, timeout=5, message="first call out")
        forwarder.submit(s.agent_id, of_check("A", "a2", "a3", "a4"), s)  # three held: one short of full
        forwarder.submit(s.agent_id, of_check("B", "b1"), s)
        await assert_eventually(lambda: len(ingest.calls) == 2, timeout=5, message="B's call not out")
        assert ingest.calls == [["a1"], ["b1"]] and forwarder._parked == 3
        ingest.gate.set()
        await asyncio.wait_for(forwarder.join(), 5)
        assert ingest.calls == [["a1"], ["b1"], ["a2", "a3", "a4"]]
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
