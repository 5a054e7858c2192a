"""Runs claimed ahead (the results service hands out runs due within CLAIM_AHEAD_S): the scheduler
plans them at once and opens each run's check at its scheduled time, not before; the next claim is
made a little before the next run is due (services/scheduler/monitors.py)."""

from __future__ import annotations

import time

from tests.test_monitor_scheduling import Rig, claimed, eventually


async def test_a_run_claimed_ahead_is_opened_at_its_time():
    async with Rig() as rig:
        due = time.time() + 0.4
        rig.runs.due = [claimed(1, due=due)]
        opened_at: list[float] = []
        open_check = rig.ingest.OpenCheck

        async def timed(request, **kwargs):
            opened_at.append(time.time())
            return await open_check(request, **kwargs)

        rig.ingest.OpenCheck = timed  # type: ignore[method-assign]
        rig.runner(poll_s=30.0)
        await eventually(lambda: len(rig.ingest.opened) == 1, "the run started")
        assert opened_at[0] >= due  # not early; within the `eventually` deadline: not late by much either


async def test_the_next_claim_is_made_before_the_next_run_is_due():
    async with Rig() as rig:
        rig.runs.due = [claimed(1)]
        # The fake hands out a run once due; a run already claimed keeps the next one ahead.
        due = time.time() + 1.0
        rig.runs.later = [(due, claimed(2, due=due))]
        rig.runner(poll_s=30.0)
        await eventually(lambda: len(rig.ingest.opened) == 2, "both runs started", timeout=5)
        # The claim after the first run came when the next was 0.2 s (WAKE_AHEAD_S) from due: it
        # found nothing (this fake claims nothing ahead), and the runner asked again when it was due.
        (first, _), (early, _), (on_time, _) = rig.runs.claims[:3]
        assert on_time - early >= 0.15 and len(rig.runs.claims) <= 4
