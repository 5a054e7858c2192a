"""Monitors as Prometheus metrics (ScrapeMonitors): blackbox_exporter's names, per monitor and agent.

Grafana dashboards and Alertmanager rules written for blackbox_exporter work on these as they
are: for each monitor, each agent of its last evaluated run and each check type of that run, the
series blackbox_exporter's prober of that kind exports (prober/http.go, tcp.go, icmp.go, dns.go,
utils.go, handler.go), from the stored result, with the labels
`monitor, monitor_id, agent, agent_id, check_type, country`. Plus one series per monitor and state
(hostcheck_monitor_state, 1 for the current state and 0 for the others, as kube-state-metrics does,
so a state change never leaves a stale series behind), hostcheck_monitor_up, and when the last run
was evaluated (an alert on its age catches a monitor whose runs stopped).

Where our data differs from blackbox_exporter's (docs/monitors.md lists each):
- probe_http_duration_seconds is the last hop of a redirect chain (blackbox sums the chain);
- probe_icmp_duration_seconds{phase="rtt"} is the average of the echo replies (blackbox sends one request);
- a phase that was not measured (no TLS, an IP target: no resolve) has no series (blackbox says 0).

One query, whatever the number of monitors: monitors joined to their last evaluated run (its
primary key, from monitors.last_evaluated_seq), its check's tasks and their results. Of a result's
data only the values a metric reads leave the database, one column each (FIELDS): the whole data
(bodies, headers, certificates: kilobytes a result) decoded for 10,000 results took most of a
scrape's time. 1,000 monitors x 10 agents scrape in well under a second (tests/test_monitor_metrics.py).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, case, func, literal, select, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.core.checktypes._blackbox import seconds, value_of
from hostcheck.core.errors import Unauthenticated
from hostcheck.services.results.models import ResultRow, TaskRow
from hostcheck.services.results.monitormodels import MonitorRow, MonitorRunRow

# The exposition format's media type (ScrapeMonitors' HttpBody.content_type).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# A monitor's states (monitormodels.MonitorRow.state): each gets a hostcheck_monitor_state series.
STATES = ("pending", "up", "degraded", "down", "unknown", "paused")


@dataclass(frozen=True)
class Family:
    name: str
    help: str


def _families(*pairs: tuple[str, str]) -> dict[str, Family]:
    return {name: Family(name, help_text) for name, help_text in pairs}


# Every family written, in this order, each with its HELP and TYPE once (all are gauges: a scrape
# reports the last run). Help texts are blackbox_exporter's where the name is.
FAMILIES = _families(
    ("probe_success", "Displays whether or not the probe was a success"),
    ("probe_duration_seconds", "Returns how long the probe took to complete in seconds"),
    ("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6"),
    ("probe_dns_lookup_time_seconds", "Returns the time taken for probe dns lookup in seconds"),
    ("probe_http_status_code", "Response HTTP status code"),
    ("probe_http_content_length", "Length of http content response"),
    ("probe_http_uncompressed_body_length", "Length of uncompressed response body"),
    ("probe_http_redirects", "The number of redirects"),
    ("probe_http_ssl", "Indicates if SSL was used for the final redirect"),
    ("probe_http_version", "Returns the version of HTTP of the probe response"),
    ("probe_http_duration_seconds", "Duration of http request by phase, last hop of a redirect chain"),
    ("probe_ssl_earliest_cert_expiry", "Returns last SSL chain expiry in unixtime"),
    ("probe_tls_version_info", "Returns the TLS version used or NaN when unknown"),
    ("probe_tls_duration_seconds", "Duration of tls probes by phase (connect, starttls, handshake)"),
    ("probe_dns_duration_seconds", "Duration of DNS request by phase"),
    ("probe_dns_query_succeeded", "Displays whether or not the query was executed successfully"),
    ("probe_dns_answer_rrs", "Returns number of entries in the answer resource record list"),
    ("probe_dns_authority_rrs", "Returns number of entries in the authority resource record list"),
    ("probe_icmp_duration_seconds", "Duration of icmp request by phase (rtt: the average of the packets)"),
    ("probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)"),
    ("hostcheck_monitor_state", "The monitor's state: 1 for the current one, 0 for the others"),
    ("hostcheck_monitor_up", "1 when the monitor is up, 0 otherwise"),
    ("hostcheck_monitor_interval_seconds", "Seconds between the monitor's runs"),
    ("hostcheck_monitor_last_run_timestamp_seconds", "When the monitor's last evaluated run finished (unixtime)"),
)

def label_value(text: str) -> str:
    """A label value as the text format writes it: backslash, double quote and line feed escaped."""
    if "\\" in text or '"' in text or "\n" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text


def _help_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    """A sample value: integers without a fraction, Prometheus' spelling of NaN and infinities."""
    if type(value) is int:  # most values: status codes, counts, flags (a bool is not `int` here)
        return str(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Exposition:
    """Samples grouped by family (the format wants a family's samples together), then written once."""

    def __init__(self) -> None:
        self.samples: dict[str, list[str]] = {name: [] for name in FAMILIES}

    def add(self, family: str, labels: str, value: float) -> None:
        """`labels`: the label pairs, already escaped and joined (`a="x",b="y"`)."""
        # Inlined for floats, most values (a scrape writes ~20 samples per agent and monitor).
        if type(value) is float and math.isfinite(value):
            text = repr(value)
            if text.endswith(".0"):
                text = text[:-2]
        else:
            text = number(value)
        self.samples[family].append(f"{family}{{{labels}}} {text}")

    def text(self) -> str:
        out: list[str] = []
        for name, lines in self.samples.items():
            if lines:
                out.append(f"# HELP {name} {_help_text(FAMILIES[name].help)}\n# TYPE {name} gauge")
                out.extend(lines)
        return "\n".join(out) + "\n" if out else ""


# What the metrics read of a result's data, by dotted path inside its type's object: each is one
# column of the query (so only these values leave the database, not the result's kilobytes).
_DURATION_FIELDS = tuple(dict.fromkeys(d.field for spec in CHECK_TYPES.values() for d in spec.durations))
_TYPE_FIELDS = tuple(dict.fromkeys(f for spec in CHECK_TYPES.values() for f in spec.probe_fields))
FIELDS = tuple(dict.fromkeys(("ip_version", *_DURATION_FIELDS, *(f for f in _TYPE_FIELDS if not f.startswith("#")))))
# Lists whose length a metric is ("#name" in a spec's probe_fields; "#expiry" is the chain's).
COUNTED = tuple(f[1:] for f in _TYPE_FIELDS if f.startswith("#") and f != "#expiry")
# Where a type's certificate chain is. The database takes the least not_after of it: the agent
# writes them all as YYYY-MM-DDTHH:MM:SSZ (agent/probers/_certs.py), so text order is time order.
CHAINS = (("tls", "chain"), ("chain",))
Fields = dict[str, Any]
# Per type: (field, family, its labels besides the probe's: `,phase="connect"`) of each duration
# its spec exports (the agent's histograms; here gauges of the last run).
_DURATIONS = {name: tuple((d.field, d.histogram.name, "".join(f',{k}="{label_value(v)}"' for k, v in d.labels))
                          for d in spec.durations if d.histogram.name in FAMILIES)
              for name, spec in CHECK_TYPES.items()}


def probe_metrics(out: Exposition, labels: str, *, check_type: str, status: str, success: bool | None,
                  duration_ms: float | None, fields: Fields | None) -> None:
    """The series of one task of a run: `labels` are its monitor's and agent's, escaped and joined;
    `fields` what the query read of its result's data (None: no result)."""
    labels = f'{labels},check_type="{label_value(check_type)}"'
    out.add("probe_success", labels, 1 if status == "completed" and success else 0)
    if duration_ms is not None:
        out.add("probe_duration_seconds", labels, duration_ms / 1000.0)
    if fields is None:
        return
    ip_version = value_of(fields["ip_version"])
    if ip_version in (4, 6):
        out.add("probe_ip_protocol", labels, ip_version)
    for field, family, phase in _DURATIONS.get(check_type, ()):
        value = seconds(fields[field])
        if value is not None:
            out.add(family, labels + phase, value)
    spec = CHECK_TYPES.get(check_type)
    if spec is not None:
        for family, extra, value in spec.probe_metrics(fields):
            out.add(family, labels + "".join(f',{k}="{label_value(v)}"' for k, v in extra), value)


def monitor_metrics(out: Exposition, *, monitor_id: str, name: str, state: str, interval_s: int,
                    last_run_at: datetime | None) -> str:
    """The monitor's own series; returns its labels (escaped and joined) for its probes'."""
    labels = f'monitor="{label_value(name)}",monitor_id="{monitor_id}"'
    for known in STATES if state in STATES else (*STATES, state):
        out.add("hostcheck_monitor_state", f'{labels},state="{label_value(known)}"', 1 if known == state else 0)
    out.add("hostcheck_monitor_up", labels, 1 if state == "up" else 0)
    out.add("hostcheck_monitor_interval_seconds", labels, interval_s)
    if last_run_at is not None:
        out.add("hostcheck_monitor_last_run_timestamp_seconds", labels, last_run_at.timestamp())
    return labels


class _PostgresData:
    """data[check_type] on Postgres, taken out once per row (a function in a LATERAL join runs once
    a row): each path read on the stored column would decompress (or fetch from TOAST) the whole
    result again, 20 times a row."""

    def __init__(self) -> None:
        self.typed = (func.jsonb_extract_path(ResultRow.data, TaskRow.check_type).table_valued("data")
                      .render_derived(name="typed").lateral())

    def join(self, stmt):
        return stmt.outerjoin(self.typed, true())

    @staticmethod
    def _path(keys: tuple[str, ...]):
        return postgresql.array([literal(k, Text) for k in keys])

    def value(self, keys: tuple[str, ...]):
        return self.typed.c.data.op("#>>", return_type=Text)(self._path(keys))

    def _array(self, keys: tuple[str, ...]):
        """The list at `keys`, or NULL (not an error) where a type has something else by that name."""
        value = self.typed.c.data.op("#>", return_type=JSONB)(self._path(keys))
        return case((func.jsonb_typeof(value) == "array", value))

    def count(self, keys: tuple[str, ...]):
        return func.jsonb_array_length(self._array(keys))

    def earliest(self, chains: tuple[tuple[str, ...], ...], key: str):
        certs = func.jsonb_array_elements(func.coalesce(*(self._array(c) for c in chains))) \
            .table_valued("value").alias("cert")
        # ->> of a non-object element is NULL, not an error.
        return select(func.min(certs.c.value.op("->>", return_type=Text)(literal(key, Text)))) \
            .select_from(certs).scalar_subquery()


class _SqliteData:
    """Paths into data[check_type] on SQLite: json_extract and json_each with a path built per row
    (SQLite keeps the last JSON texts it parsed, so a row's result is parsed once)."""

    def join(self, stmt):
        return stmt

    @staticmethod
    def _path(keys: tuple[str, ...]):
        return literal('$."', Text) + TaskRow.check_type + literal('"' + "".join(f'."{k}"' for k in keys), Text)

    def value(self, keys: tuple[str, ...]):
        return func.json_extract(ResultRow.data, self._path(keys))

    def count(self, keys: tuple[str, ...]):
        return func.json_array_length(ResultRow.data, self._path(keys))

    def earliest(self, chains: tuple[tuple[str, ...], ...], key: str):
        chain = func.coalesce(*(func.json_extract(ResultRow.data, self._path(c)) for c in chains))
        certs = func.json_each(chain).table_valued("value").alias("cert")
        return select(func.min(func.json_extract(certs.c.value, f"$.{key}"))).select_from(certs).scalar_subquery()


def _scrape_query(session: AsyncSession, owner_key_id: uuid.UUID | None, admin: bool):
    data = _PostgresData() if session.get_bind().dialect.name == "postgresql" else _SqliteData()
    run = and_(MonitorRunRow.monitor_id == MonitorRow.id, MonitorRunRow.seq == MonitorRow.last_evaluated_seq)
    # Not ordered here: the database would sort the wide rows (on disk, at 10,000); exposition() sorts keys.
    stmt = (select(MonitorRow.created_at, MonitorRow.id, MonitorRow.name, MonitorRow.state, MonitorRow.interval_s,
                   MonitorRunRow.finished_at, TaskRow.agent_id, TaskRow.agent_name, TaskRow.country,
                   TaskRow.check_type, TaskRow.status, ResultRow.id, ResultRow.success, ResultRow.duration_ms,
                   *(data.value(tuple(f.split("."))) for f in FIELDS),
                   *(data.count((name,)) for name in COUNTED),
                   data.earliest(CHAINS, "not_after"))
            .select_from(MonitorRow)
            .outerjoin(MonitorRunRow, run)
            .outerjoin(TaskRow, TaskRow.check_id == MonitorRunRow.check_id)
            .outerjoin(ResultRow, ResultRow.task_id == TaskRow.id))
    stmt = data.join(stmt)
    if not admin:
        stmt = stmt.where(MonitorRow.created_by_key_id == owner_key_id)
    return stmt


_NAMES = (*FIELDS, *(f"#{name}" for name in COUNTED), "#expiry")
_FIRST_FIELD = 14


def _order(row: Any) -> tuple:
    """Oldest monitor first, then its agents by name and its types: a stable text from scrape to scrape."""
    return (row[0], row[1].int, row[7] or "", row[6].int if row[6] is not None else 0, row[9] or "")


def exposition(rows: Iterable[Any]) -> str:
    """The text of the query's rows (one per monitor x task; a monitor with no evaluated run: one, no task)."""
    out = Exposition()
    current: uuid.UUID | None = None
    monitor_labels = ""
    for row in sorted(rows, key=_order):
        (_, monitor_id, name, state, interval_s, finished_at, agent_id, agent_name, country, check_type, status,
         result_id, success, duration_ms) = row[:_FIRST_FIELD]
        if monitor_id != current:
            current = monitor_id
            monitor_labels = monitor_metrics(out, monitor_id=str(monitor_id), name=name, state=state,
                                             interval_s=interval_s, last_run_at=finished_at)
        if agent_id is None:
            continue
        labels = (f'{monitor_labels},agent="{label_value(agent_name or "")}",agent_id="{agent_id}",'
                  f'country="{label_value(country or "")}"')
        fields = dict(zip(_NAMES, row[_FIRST_FIELD:], strict=True)) if result_id is not None else None
        probe_metrics(out, labels, check_type=check_type, status=status, success=success, duration_ms=duration_ms,
                      fields=fields)
    return out.text()


async def scrape(store: Any, owner_key_id: uuid.UUID | None, admin: bool) -> str:
    """The Prometheus text of the monitors `owner_key_id` owns (the admin: every monitor).

    `store` is anything with `sessions` (an async_sessionmaker): the MonitorStore or the ResultsStore.
    """
    if not admin and owner_key_id is None:
        raise Unauthenticated("monitors need an API key (authorization: Bearer <key>)")
    async with store.sessions() as session:
        result = await session.execute(_scrape_query(session, owner_key_id, admin))
        return exposition(result.all())
