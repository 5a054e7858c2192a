"""The benchmark table: goal, measured figure, ratio; printed and written to docs/benchmarks.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Row:
    """One measure against its goal. `at_most`: the goal is an upper bound (latency, memory, CPU)."""

    scenario: str
    measure: str
    goal: float
    measured: float
    unit: str
    at_most: bool
    note: str = ""
    # The same work done by the bare parts in the same run (bench/floors.py), in `unit`; None: no floor.
    floor: float | None = None

    @property
    def ratio(self) -> float:
        """How far from the goal, >= 1.00 when met: goal/measured for upper bounds, measured/goal else."""
        if self.at_most:
            return math.inf if self.measured <= 0 else self.goal / self.measured
        return self.measured / self.goal

    @property
    def vs_floor(self) -> float | None:
        """measured / floor: what the product costs over its bare parts (for rates: the share of the floor)."""
        if self.floor is None or self.floor == 0:
            return None
        return self.measured / self.floor

    @property
    def met(self) -> bool:
        return self.measured <= self.goal if self.at_most else self.measured >= self.goal

    def cells(self) -> list[str]:
        sign = "<=" if self.at_most else ">="
        ratio = "inf" if math.isinf(self.ratio) else f"{self.ratio:.2f}"
        floor = "" if self.floor is None else f"{fmt(self.floor)} {self.unit}"
        vs_floor = "" if self.vs_floor is None else f"{self.vs_floor:.2f}"
        return [self.scenario, self.measure, f"{sign} {fmt(self.goal)} {self.unit}",
                f"{fmt(self.measured)} {self.unit}", floor, vs_floor, ratio, "yes" if self.met else "**no**",
                self.note]


def fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(self, rows: list[Row]) -> None:
        self.rows.extend(rows)

    def table(self) -> str:
        head = ["scenario", "measure", "goal", "measured", "floor", "measured / floor", "ratio", "met", "notes"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r.cells()) + " |" for r in self.rows]
        lines += [f"| {name} | not measured | | | | | | **no** | {' '.join(why.split())[:160]} |" for name, why in
                  (f.split(": ", 1) if ": " in f else (f, "") for f in self.failed)]
        return "\n".join(lines)

    def markdown(self, *, machine: dict[str, str], started: str, load: str, elapsed_s: float, preamble: str) -> str:
        return (f"# Benchmarks\n\n{preamble}\n\n"
                f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory']} memory. "
                f"Run {started}, {elapsed_s:.0f} s; load average at start/end: {load}.\n\n"
                f"Ratio: how far from the goal, >= 1.00 when met (goal/measured for upper bounds, "
                f"measured/goal for lower bounds). Floor: the same work done by the bare parts in the same "
                f"run (bench/floors.py: bare grpcio servers with the same hops, one COPY into the same "
                f"tables, a raw Redis publish to the same subscribers); measured / floor is what the "
                f"product adds (for a rate, the share of the floor's rate it reaches). Goals in `x floor` "
                f"are ratios to the floor.\n\n{self.table()}\n\n"
                + ("## Notes from this run\n\n" + "\n".join(f"- {n}" for n in self.notes) + "\n" if self.notes else ""))
