"""`make bench`: the soak of issue 6 at full scale (1,000 simulated agents, 200 watchers, 60 s)."""

from __future__ import annotations

import pytest

from bench.soak import FULL_SOAK, soak

pytestmark = [pytest.mark.bench, pytest.mark.timeout(600)]


async def test_soak(report, tmp_path):
    try:
        rows = await soak(FULL_SOAK, tmp_path, report.notes)
    except BaseException as exc:
        report.failed.append(f"soak: {type(exc).__name__}: {str(exc)[:200]}")
        raise
    report.add(rows)
