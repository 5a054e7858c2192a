"""The suite's own guards against flakiness (docs/testing.md): free ports that no other socket can take
first, timing bounds with slack for a loaded machine, and no gateway stack left running under later tests."""

from __future__ import annotations

import ast
import re
import socket

from tests.helpers import ROOT, TIMER_SLACK_S, _ephemeral_range, free_port, within


def test_free_ports_are_below_the_ephemeral_range_distinct_and_bindable():
    low, _ = _ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p < low for p in ports)
    for port in ports[:20]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
            s.listen()


# "started < 0.6" after a 0.5 s timeout: 100 ms of slack fails on a busy machine. A
# sub-second literal upper bound on a measured time is that pattern.
TIGHT_BOUND = re.compile(r"(\(\) - started|elapsed|took) < 0?\.[0-9]+\b")


def test_no_timing_bound_is_tighter_than_the_timer_slack():
    assert TIMER_SLACK_S >= 1.0 and within(0.5) == 0.5 + TIMER_SLACK_S
    tight = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in (ROOT / "tests").rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if TIGHT_BOUND.search(line)]
    assert not tight, "use tests.helpers.within(timeout):\n" + "\n".join(tight)


def test_no_conftest_keeps_a_gateway_for_the_whole_session():
    for path in (ROOT / "tests").rglob("conftest.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) or "gateway" not in node.name:
                continue
            for deco in node.decorator_list:
                scope = [k.value.value for k in getattr(deco, "keywords", []) if k.arg == "scope"]
                assert scope != ["session"], f"{path.relative_to(ROOT)}: {node.name} is session-scoped"
