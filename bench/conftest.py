"""The report every benchmark adds its rows to; printed at the end of the run and, when every
scenario ran (a whole `make bench`), written to docs/benchmarks.md."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from bench.report import DOC, Report
from bench.system import load_average, machine

PREAMBLE = """Written by `make bench` (bench/, issue 8). Each scenario starts its own system: registry,
results and scheduler as separate processes on Postgres and Redis with the production defaults
(settings changed: addresses, the loopback target allow-list, the rate-limit quota and the watch
streams per client IP), Envoy
rendered from envoy.yaml where the scenario goes through it. Thousands of agents are simulated by
bench/simagent.py: the real stream protocol, a real token check per connect, the agent's batching
rule and default settings, many streams per process and per HTTP/2 connection. Single agents are
the real agent process with default settings. Timings compared with each other (REST vs gRPC,
agent vs blackbox_exporter) are measured in the same run, interleaved. The machine is shared:
other work was running, see the load average."""

# docs/benchmarks.md from this line on is written by hand (profiles, what bounds a missed goal)
# and kept when `make bench` rewrites the table above it.
KEPT = "<!-- kept by make bench: written by hand below -->"

REPORT = pytest.StashKey[Report]()
STARTED = pytest.StashKey[tuple[str, str, float]]()
RAN = pytest.StashKey[set]()


def pytest_configure(config):
    config.stash[REPORT] = Report()
    config.stash[RAN] = set()
    config.stash[STARTED] = (datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), load_average(), time.monotonic())


@pytest.fixture(scope="session")
def report(request) -> Report:
    return request.config.stash[REPORT]


@pytest.fixture(scope="session")
def ran(request) -> set:
    """Names of the scenarios that ran (the document is written only when all did)."""
    return request.config.stash[RAN]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from bench.scenarios import SCENARIOS

    rep = config.stash.get(REPORT, None)
    if rep is None or not (rep.rows or rep.failed):
        return
    started, load, t0 = config.stash[STARTED]
    terminalreporter.write_sep("=", "benchmarks")
    terminalreporter.write_line(rep.table())
    for note in rep.notes:
        terminalreporter.write_line(f"- {note}")
    if set(SCENARIOS) <= config.stash[RAN]:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        kept = ""
        if DOC.exists() and KEPT in (old := DOC.read_text()):
            kept = "\n" + old[old.index(KEPT):]  # the analysis written by hand survives the rewrite
        DOC.write_text(rep.markdown(machine=machine(), started=started, load=f"{load} / {load_average()}",
                                    elapsed_s=time.monotonic() - t0, preamble=PREAMBLE) + kept)
        terminalreporter.write_line(f"written to {DOC}")
    else:
        terminalreporter.write_line(f"not every scenario ran: {DOC} left as it was")
