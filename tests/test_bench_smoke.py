"""Every benchmark scenario at a tiny scale, so `make bench` never rots (goals are not checked here)."""

from __future__ import annotations

import math

import pytest

from bench.scenarios import SCENARIOS, SMOKE
from bench.system import blackbox_binary


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_scenario_runs(name, tmp_path):
    if name in ("agent_throughput", "footprint") and blackbox_binary() is None:
        pytest.skip("prometheus-blackbox-exporter is not installed (scripts/setup-system.sh)")
    notes: list[str] = []
    rows = await SCENARIOS[name](SMOKE, tmp_path, notes)
    assert rows and notes
    for row in rows:
        assert not math.isnan(row.measured), row
