"""The report every benchmark adds its rows to; printed and written to docs/benchmarks.md at the end."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from bench.report import DOC, Report
from bench.system import load_average, machine

PREAMBLE = """Written by `make bench` (bench/, issue 8). Each scenario starts its own system: registry,
results and scheduler as separate processes on Postgres and Redis with the production defaults
(settings changed: addresses, the loopback target allow-list and the rate-limit quota), Envoy
rendered from envoy.yaml where the scenario goes through it. Thousands of agents are simulated by
bench/simagent.py: the real stream protocol, a real token check per connect, the agent's batching
rule and default settings, many streams per process and per HTTP/2 connection. Single agents are
the real agent process with default settings. Timings compared with each other (REST vs gRPC,
agent vs blackbox_exporter) are measured in the same run, interleaved. The machine is shared:
other work was running, see the load average."""


@pytest.fixture(scope="session")
def report(request):
    rep = Report()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = load_average()
    t0 = time.monotonic()
    yield rep
    if not rep.rows and not rep.failed:
        return
    text = rep.markdown(machine=machine(), started=started, load=f"{load_start} / {load_average()}",
                        elapsed_s=time.monotonic() - t0, preamble=PREAMBLE)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line("")
        terminal.write_line(rep.table())
        terminal.write_line(f"written to {DOC}")
