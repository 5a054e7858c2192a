"""Every benchmark scenario at a tiny scale, so `make bench` never rots (goals are not checked here)."""

from __future__ import annotations

import math
import socket

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


def test_report_shows_floor_and_ratio_to_it():
    from bench.report import Report, Row

    rep = Report()
    rep.add([Row("latency", "p50", 15, 30.0, "ms", True, floor=10.0), Row("watchers", "p99", 50, 20.0, "ms", True)])
    lines = rep.table().splitlines()
    assert lines[0].split(" | ")[4:6] == ["floor", "measured / floor"]
    assert "| 10.0 ms | 3.00 | 0.50 | **no** |" in lines[2]
    assert "| 20.0 ms |  |  | 2.50 | yes |" in lines[3]


async def test_raw_chain_floor_times_every_run():
    from bench.floors import raw_chain

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        async with raw_chain(f"127.0.0.1:{listener.getsockname()[1]}", agents=3, processes=2) as once:
            ms = [await once() for _ in range(5)]
    assert all(0 < x < 5000 for x in ms), ms
