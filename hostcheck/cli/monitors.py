"""`hostcheck monitors`: create, list, show, pause, resume, delete and watch monitors over gRPC.

A monitor belongs to an API key (the admin token sees and edits all), so every command sends
`authorization: Bearer <key>` to the MonitorsService (Envoy, or the results service itself).
The commands are declared here with click alone; rich (tables) and hostcheck.cli.check (the request
builder and error text that `monitors create` shares with `hostcheck check`) load when a command runs,
because `hostcheck agent` loads the command line too and the agent's install has no rich.

Exit codes are `hostcheck check`'s where they mean the same: 0 done, 1 a deletion not confirmed,
2 a usage error (click's), 3 refused by the server (the bad field is named), not found, or the
monitor deleted while watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import click
import grpc
from google.protobuf import field_mask_pb2, json_format

from hostcheck.cli.checkoptions import selector_options
from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.v1 import monitors_pb2, monitors_pb2_grpc

EXIT_OK, EXIT_NOT_CONFIRMED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
STATE_STYLE = {"up": "green", "degraded": "yellow", "down": "red", "unknown": "magenta", "paused": "dim",
               "pending": "cyan", "running": "cyan", "failing": "red", "missed": "magenta"}
_UINT32_MAX = 2**32 - 1


class Duration(click.ParamType):
    """30s, 5m, 1h, 1d, 500ms, or a plain number of seconds; converted to milliseconds."""

    name = "duration"
    _MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(value))
        if found is None:
            self.fail(f"{value!r} is not a duration like 30s, 5m, 1h or 500ms", param, ctx)
        ms = round(float(found[1]) * self._MS[found[2] or "s"])
        if ms > _UINT32_MAX:
            self.fail(f"{value!r} is too long", param, ctx)
        return ms


class Api:
    """One channel to the MonitorsService, every call with the caller's credential and a deadline."""

    def __init__(self, server: str, token: str) -> None:
        self.channel = grpc.aio.insecure_channel(server)
        self.stub = monitors_pb2_grpc.MonitorsServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")]

    async def call(self, method: str, request: Any) -> Any:
        return await getattr(self.stub, method)(request, metadata=self.metadata, timeout=30)

    def watch(self, monitor_id: str) -> Any:
        return self.stub.WatchMonitor(monitors_pb2.WatchMonitorRequest(monitor_id=monitor_id),
                                      metadata=self.metadata)

    async def close(self) -> None:
        await self.channel.close()


def _token(api_key: str, admin_token: str) -> str:
    if not (api_key or admin_token):
        raise click.UsageError("monitors belong to an API key: pass --api-key or set HOSTCHECK_API_KEY "
                               "(the admin token, --admin-token or HOSTCHECK_ADMIN_TOKEN, sees every monitor)")
    return api_key or admin_token


def _run(server: str, token: str, work: Callable[[Api], Awaitable[int]]) -> None:
    """Runs one command's calls; a refusal (any gRPC error) is printed with its fields and exits 3."""

    async def guarded() -> int:
        api = Api(server, token)
        try:
            return await work(api)
        except grpc.aio.AioRpcError as exc:
            from hostcheck.cli.check import describe_error

            _console(stderr=True).print(f"[red]error:[/] {describe_error(exc)}", highlight=False)
            return EXIT_REFUSED
        finally:
            await api.close()

    try:
        code = asyncio.run(guarded())
    except ModuleNotFoundError as exc:
        if exc.name != "rich":
            raise
        raise click.ClickException("this install lacks rich: pip install 'hostcheck[cli]'") from exc
    sys.exit(code)


def _console(*, stderr: bool = False):
    """rich's console; wide when not a terminal, so a pipe gets whole ids, not folded table cells."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, highlight=False, soft_wrap=not stream.isatty(),
                   width=None if stream.isatty() else 1000)


def _emit(*renderables: Any) -> None:
    """Tables to stdout: as they are on a terminal; through a pipe without the cells' trailing padding."""
    out = _console()
    if sys.stdout.isatty():
        for renderable in renderables:
            out.print(renderable)
        return
    with out.capture() as captured:
        for renderable in renderables:
            out.print(renderable)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    sys.stdout.flush()


def _dict(message: Any) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2), flush=True)


# --- words for people --------------------------------------------------------------------------------------

def _when(message: Any, field: str) -> datetime | None:
    return getattr(message, field).ToDatetime(tzinfo=UTC) if message.HasField(field) else None


def span(seconds: float) -> str:
    """12s, 5m, 3h, 2d: the largest unit that fits, for an age or an interval."""
    seconds = int(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and (seconds % size == 0 or seconds >= 2 * size):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def every(seconds: int) -> str:
    """An interval exactly: 90s, 5m, 2h (the largest unit that divides it)."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "-"
    delta = ((now or datetime.now(UTC)) - moment).total_seconds()
    return f"in {span(-delta)}" if delta < 0 else f"{span(delta)} ago"


def clock(moment: datetime | None) -> str:
    """The local time of day, as a watch line's timestamp."""
    return (moment or datetime.now(UTC)).astimezone().strftime("%H:%M:%S")


def esc(text: str) -> str:
    """Text from the server (names, targets, errors) printed literally, never read as rich markup."""
    from rich.markup import escape

    return escape(text)


def styled(state: str) -> str:
    style = STATE_STYLE.get(state)
    return f"[{style}]{esc(state)}[/]" if style else esc(state)


def uptime(monitor: monitors_pb2.Monitor) -> str:
    shares = [f"{getattr(monitor, f) * 100:.1f}%" if monitor.HasField(f) else "-" for f in ("uptime_24h", "uptime_7d")]
    return " / ".join(shares)


def selector_words(selector: Any) -> str:
    words = []
    if selector.magic:
        words.append("from " + " or ".join(selector.magic))
    for field, label in (("continents", "continent"), ("regions", "region"), ("countries", "country"),
                         ("cities", "city"), ("agent_ids", "agent")):
        if values := list(getattr(selector, field)):
            words.append(f"{label} {', '.join(values)}")
    if selector.same_as:
        words.append(f"the agents of check {selector.same_as}")
    words.append(f"at most {selector.limit or 10}")
    return ", ".join(words)


def agents_words(agents: Any) -> str:
    """Failing agents and their errors, the evidence of a run or a state change."""
    return esc("; ".join(f"{a.agent_name or a.agent_id}: {a.error_code}" + (f" {a.error}" if a.error else "")
                         for a in agents if not a.success))


def run_words(run: monitors_pb2.MonitorRun) -> str:
    if run.verdict == "running":
        return f"run #{run.seq} started: check {run.check_id}"
    words = f"run #{run.seq} {styled(run.verdict)}: {run.agents_failing} of {run.agents_total} agents failing"
    if evidence := agents_words(run.agents):
        words += f" ({evidence})"
    if run.reason:
        words += f" ({esc(run.reason)})"
    return words + (f" -> {styled(run.state)}" if run.state else "")


def notification_words(event: monitors_pb2.MonitorEvent) -> str:
    if event.notification == "delivered":
        return f"delivered {ago(_when(event, 'delivered_at'))} ({event.delivery_attempts} attempt(s))"
    if event.notification == "pending":
        words = f"pending, {event.delivery_attempts} attempt(s)"
        return words + (f": {esc(event.last_delivery_error)}" if event.last_delivery_error else "")
    return "-"


def change_words(event: monitors_pb2.MonitorEvent) -> str:
    cause = f"run #{event.run_seq}" if event.run_seq else "an edit"
    return f"{styled(event.from_state)} -> {styled(event.to_state)} ({cause})"


# --- tables -------------------------------------------------------------------------------------------------

def monitors_table(monitors: list[monitors_pb2.Monitor]):
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "NAME", "TARGET", "TYPES", "STATE", "SINCE", "UPTIME 24H / 7D", "LAST RUN"):
        table.add_column(column, no_wrap=column == "ID")
    for m in monitors:
        last = f"#{m.last_run.seq} {styled(m.last_run.verdict)} {ago(_when(m.last_run, 'finished_at'))}" \
            if m.HasField("last_run") else "-"
        table.add_row(m.monitor_id, esc(m.name), esc(m.check.target), ", ".join(m.check.checks), styled(m.state),
                      ago(_when(m, "state_since")), uptime(m), last)
    return table


def runs_table(runs: list[monitors_pb2.MonitorRun]):
    from rich.table import Table

    table = Table(title="last runs", title_justify="left", box=None, header_style="bold", pad_edge=False)
    for column in ("RUN", "SCHEDULED", "VERDICT", "FAILING", "STATE", "DETAILS"):
        table.add_column(column)
    for r in runs:
        table.add_row(f"#{r.seq}", ago(_when(r, "scheduled_at")), styled(r.verdict),
                      f"{r.agents_failing}/{r.agents_total}", styled(r.state), agents_words(r.agents) or esc(r.reason))
    return table


def events_table(events: list[monitors_pb2.MonitorEvent]):
    from rich.table import Table

    table = Table(title="state changes", title_justify="left", box=None, header_style="bold", pad_edge=False)
    for column in ("AT", "CHANGE", "WEBHOOK", "EVIDENCE"):
        table.add_column(column)
    for e in events:
        at = _when(e, "at")
        table.add_row(f"{at.astimezone():%Y-%m-%d %H:%M:%S}" if at else "-", change_words(e),
                      notification_words(e), agents_words(e.failing_agents))
    return table


def details_grid(m: monitors_pb2.Monitor):
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    interval = every(m.interval_s) + (f", timeout {m.check.timeout_ms} ms" if m.check.timeout_ms else "")
    alert = f"down when {m.alert.quorum} agent(s) fail {m.alert.for_runs} run(s) in a row"
    next_run = "paused" if m.paused else f"next {ago(_when(m, 'next_run_at'))}"
    rows = [("monitor", m.monitor_id), ("name", esc(m.name)),
            ("target", esc(f"{m.check.target} ({', '.join(m.check.checks)})")),
            ("agents", esc(selector_words(m.check.agents))), ("every", interval), ("alert", alert),
            ("webhook", esc(m.alert.webhook_url or "none")),
            ("state", f"{styled(m.state)} since {ago(_when(m, 'state_since'))}"
                      + (f", {m.failing_runs} failing run(s)" if m.failing_runs else "")),
            ("uptime", f"24 h / 7 d: {uptime(m)}"),
            ("runs", f"{m.runs_total}, {next_run}"),
            ("last run", run_words(m.last_run) if m.HasField("last_run") else "none yet")]
    if m.status_slug:
        rows.append(("status page", f"/status/{m.status_slug}"))
    rows.append(("created", f"{ago(_when(m, 'created_at'))} by key {m.created_by_key_id or '(admin)'}"))
    for label, value in rows:
        grid.add_row(label, value)
    return grid


# --- the calls ----------------------------------------------------------------------------------------------

async def create(api: Api, request: monitors_pb2.CreateMonitorRequest, *, as_json: bool) -> int:
    m = await api.call("CreateMonitor", request)
    if as_json:
        _print_json(_dict(m))
        return EXIT_OK
    first = "paused: no runs until resumed" if m.paused else f"first run {ago(_when(m, 'next_run_at'))}"
    print(f"monitor_id:     {m.monitor_id}\n"
          f"name:           {m.name}\n"
          f"checks:         {', '.join(m.check.checks)} of {m.check.target} every {every(m.interval_s)}\n"
          f"state:          {m.state} ({first})\n"
          f"webhook_secret: {m.webhook_secret}\n"
          "The webhook secret is shown only now: keep it to verify X-Hostcheck-Signature "
          "(docs/monitors.md).", flush=True)
    return EXIT_OK


async def all_monitors(api: Api, state: str = "") -> list[monitors_pb2.Monitor]:
    found: list[monitors_pb2.Monitor] = []
    token, seen = "", set()
    while True:
        reply = await api.call("ListMonitors", monitors_pb2.ListMonitorsRequest(page_size=200, page_token=token,
                                                                                state=state))
        found.extend(reply.monitors)
        token = reply.next_page_token
        if not token or token in seen:
            return found
        seen.add(token)


async def list_monitors(api: Api, *, state: str, as_json: bool) -> int:
    monitors = await all_monitors(api, state)
    if as_json:
        _print_json({"monitors": [_dict(m) for m in monitors]})
    elif not monitors:
        print("no monitors" + (f" in state {state}" if state else ""))
    else:
        _emit(monitors_table(monitors))
    return EXIT_OK


async def show(api: Api, monitor_id: str, *, runs: int, events: int, as_json: bool) -> int:
    m, run_page, event_page = await asyncio.gather(
        api.call("ReadMonitor", monitors_pb2.ReadMonitorRequest(monitor_id=monitor_id)),
        api.call("ListMonitorRuns", monitors_pb2.ListMonitorRunsRequest(monitor_id=monitor_id, page_size=runs)),
        api.call("ListMonitorEvents", monitors_pb2.ListMonitorEventsRequest(monitor_id=monitor_id,
                                                                            page_size=events)))
    if as_json:
        _print_json({"monitor": _dict(m), "runs": [_dict(r) for r in run_page.runs],
                     "events": [_dict(e) for e in event_page.events]})
        return EXIT_OK
    parts: list[Any] = [details_grid(m)]
    for rows, table in ((run_page.runs, runs_table), (event_page.events, events_table)):
        if rows:
            parts += ["", table(list(rows))]
    _emit(*parts)
    return EXIT_OK


async def set_paused(api: Api, monitor_id: str, *, paused: bool, as_json: bool) -> int:
    m = await api.call("UpdateMonitor", monitors_pb2.UpdateMonitorRequest(
        monitor_id=monitor_id, monitor=monitors_pb2.CreateMonitorRequest(paused=paused),
        update_mask=field_mask_pb2.FieldMask(paths=["paused"])))
    if as_json:
        _print_json(_dict(m))
    elif paused:
        print(f"paused {m.monitor_id} ({m.name}): no runs until resumed", flush=True)
    else:
        print(f"resumed {m.monitor_id} ({m.name}): state {m.state}, next run {ago(_when(m, 'next_run_at'))}",
              flush=True)
    return EXIT_OK


async def delete(api: Api, monitor_id: str, *, confirmed: bool, as_json: bool) -> int:
    m = await api.call("ReadMonitor", monitors_pb2.ReadMonitorRequest(monitor_id=monitor_id))
    what = f"monitor {m.monitor_id} ({m.name}: {', '.join(m.check.checks)} of {m.check.target})"
    if not confirmed and not await asyncio.to_thread(
            click.confirm, f"Delete {what}, its {m.runs_total} runs' history and its state changes?"):
        _console(stderr=True).print("not deleted")
        return EXIT_NOT_CONFIRMED
    reply = await api.call("DeleteMonitor", monitors_pb2.DeleteMonitorRequest(monitor_id=monitor_id))
    if as_json:
        _print_json(_dict(reply))
    else:
        print(f"deleted {what}, its {m.runs_total} runs' history and its state changes "
              "(the runs' checks stay until retention)", flush=True)
    return EXIT_OK


async def list_events(api: Api, monitor_id: str, *, limit: int, as_json: bool) -> int:
    reply = await api.call("ListMonitorEvents", monitors_pb2.ListMonitorEventsRequest(monitor_id=monitor_id,
                                                                                      page_size=limit))
    if as_json:
        _print_json({"events": [_dict(e) for e in reply.events]})
    elif not reply.events:
        print("no state changes yet")
    else:
        _emit(events_table(list(reply.events)))
    return EXIT_OK


class Watcher:
    """Prints a monitor's stream: a line per run started or finished and per state change."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.out = _console()
        self.state = ""

    def show(self, event: monitors_pb2.WatchMonitorResponse) -> bool:
        """Prints one event; False once the monitor is gone."""
        if self.as_json:
            print(json.dumps(_dict(event)), flush=True)
        elif event.event == "snapshot":
            m = event.monitor
            if not self.state:
                _console(stderr=True).print(esc(f"watching {m.monitor_id} ({m.name}): {', '.join(m.check.checks)} of "
                                                f"{m.check.target} every {every(m.interval_s)}; Ctrl-C to stop"))
            if m.state != self.state:
                self.out.print(f"{clock(None)} state {styled(m.state)} since {ago(_when(m, 'state_since'))}")
        elif event.event == "run":
            r = event.run
            self.out.print(f"{clock(_when(r, 'finished_at') or _when(r, 'started_at'))} {run_words(r)}")
        elif event.event == "state":
            c = event.change
            line = f"{clock(_when(c, 'at'))} state {change_words(c)}"
            if evidence := agents_words(c.failing_agents):
                line += f": {evidence}"
            self.out.print(line + (f"; webhook {c.notification}" if c.notification != "none" else ""))
        elif event.event == "deleted":
            self.out.print(f"{clock(None)} [red]the monitor was deleted[/]")
        if event.event == "snapshot":
            self.state = event.monitor.state
        elif event.event == "state":
            self.state = event.change.to_state
        return event.event != "deleted"


async def watch(api: Api, monitor_id: str, *, as_json: bool) -> int:
    """Until Ctrl-C (or SIGTERM), which ends it with 0; the monitor's deletion ends it with 3."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Only the main thread may take signals (a test may run the command in another).
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    call = api.watch(monitor_id)
    watcher = Watcher(as_json=as_json)

    async def follow() -> int:
        async for event in call:
            if not watcher.show(event):
                return EXIT_REFUSED
        _console(stderr=True).print("[red]error:[/] the server ended the watch")
        return EXIT_REFUSED

    following = asyncio.ensure_future(follow())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(sig)
    if not following.done():
        call.cancel()
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await following
        return EXIT_OK
    return following.result()


# --- the commands -------------------------------------------------------------------------------------------

def _connection(fn):
    """--server, --api-key and --admin-token, which every monitors command takes."""
    for option in reversed((
        click.option("--server", "-s", default="127.0.0.1:8080", show_default=True, envvar="HOSTCHECK_SERVER",
                     help="API address (Envoy or the results service), host:port."),
        click.option("--api-key", default="", envvar="HOSTCHECK_API_KEY", show_envvar=True,
                     help="The API key that owns the monitors."),
        click.option("--admin-token", default="", envvar="HOSTCHECK_ADMIN_TOKEN", show_envvar=True,
                     help="The admin token instead of a key: every monitor (its own have no key)."),
    )):
        fn = option(fn)
    return fn


_json_option = click.option("--json", "as_json", is_flag=True, help="Print the reply as JSON.")


@click.group()
def monitors() -> None:
    """Monitors: a check run every interval from many agents, alerting when a quorum of them fails.

    \b
    Exit codes:
      0  done
      1  a deletion not confirmed
      2  a usage error (a bad option)
      3  refused (the bad field is named), not found, or deleted while watched
    """


@monitors.command("create")
@click.argument("target")
@click.option("--check", "--type", "-t", "types", multiple=True, required=True, metavar="TYPE",
              help=f"Check type: {', '.join(CHECK_TYPES)} (repeatable).")
@click.option("--name", default="", help="A name for people (1-100 characters); default: TARGET and the types.")
@click.option("--every", "every_ms", type=Duration(), default="0", metavar="DURATION",
              help="Time between runs, whole seconds: 30s, 5m, 1h (default: the server's, 60s).")
@click.option("--timeout", "timeout_ms", type=Duration(), default="0", metavar="DURATION",
              help="Per-task timeout, below --every: 5s, 500ms (default: each type's).")
@click.option("--quorum", type=click.IntRange(0), default=0,
              help="Agents that must fail the same run for it to count (default 1).")
@click.option("--for-runs", type=click.IntRange(0), default=0,
              help="Consecutive such runs before the monitor is down (default 1).")
@click.option("--webhook", default="", metavar="URL", help="POSTed a signed JSON payload on down and on recovery.")
@click.option("--status-slug", default="", metavar="SLUG", help="Shown read-only to anyone at /status/SLUG.")
@click.option("--paused", is_flag=True, help="Create it paused (no runs until `hostcheck monitors resume`).")
@selector_options
@_connection
@_json_option
def create_command(target: str, types: tuple[str, ...], name: str, every_ms: int, timeout_ms: int, quorum: int,
                   for_runs: int, webhook: str, status_slug: str, paused: bool, limit: int, magic, regions,
                   countries, agent_ids, same_as: str, port: int, options: tuple[str, ...], server: str,
                   api_key: str, admin_token: str, as_json: bool) -> None:
    """Monitor TARGET with the checks given; prints its id and its webhook secret (once)."""
    from hostcheck.cli import check as checkcli

    if every_ms % 1000:
        raise click.BadParameter("must be whole seconds", param_hint="--every")
    token = _token(api_key, admin_token)
    try:
        check = checkcli.build_request(target=target, types=types, limit=limit, regions=regions,
                                       countries=countries, agent_ids=agent_ids, port=port, timeout_ms=timeout_ms,
                                       options=options, magic=magic, same_as=same_as)
    except checkcli.UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except ValueError as exc:  # a number the request's field cannot hold (a negative --limit or --port)
        raise click.UsageError(f"{exc} (--limit and --port take 0 or more)") from None
    # Fields 1-13 are CreateCheckRequest's, number for number (monitors.proto).
    request = monitors_pb2.CreateMonitorRequest.FromString(check.SerializeToString())
    request.name = name or f"{target} {'+'.join(types)}"[:100]
    request.interval_s = every_ms // 1000
    request.alert.CopyFrom(monitors_pb2.MonitorAlert(quorum=quorum, for_runs=for_runs, webhook_url=webhook))
    request.paused = paused
    request.status_slug = status_slug
    _run(server, token, lambda api: create(api, request, as_json=as_json))


@monitors.command("list")
@click.option("--state", default="", help="Only monitors in this state (up, degraded, down, unknown, paused, "
                                          "pending).")
@_connection
@_json_option
def list_command(state: str, server: str, api_key: str, admin_token: str, as_json: bool) -> None:
    """List the monitors: state, since when, uptime over 24 h and 7 d, the last run."""
    _run(server, _token(api_key, admin_token), lambda api: list_monitors(api, state=state, as_json=as_json))


@monitors.command("show")
@click.argument("monitor_id")
@click.option("--runs", type=click.IntRange(1, 500), default=10, show_default=True, help="Last runs to show.")
@click.option("--events", type=click.IntRange(1, 500), default=10, show_default=True,
              help="Last state changes to show.")
@_connection
@_json_option
def show_command(monitor_id: str, runs: int, events: int, server: str, api_key: str, admin_token: str,
                 as_json: bool) -> None:
    """A monitor's settings and state, its last runs and its last state changes."""
    _run(server, _token(api_key, admin_token),
         lambda api: show(api, monitor_id, runs=runs, events=events, as_json=as_json))


@monitors.command("pause")
@click.argument("monitor_id")
@_connection
@_json_option
def pause_command(monitor_id: str, server: str, api_key: str, admin_token: str, as_json: bool) -> None:
    """Stop running MONITOR_ID (its state becomes paused) until resumed."""
    _run(server, _token(api_key, admin_token),
         lambda api: set_paused(api, monitor_id, paused=True, as_json=as_json))


@monitors.command("resume")
@click.argument("monitor_id")
@_connection
@_json_option
def resume_command(monitor_id: str, server: str, api_key: str, admin_token: str, as_json: bool) -> None:
    """Run MONITOR_ID again (pending until its next run is evaluated)."""
    _run(server, _token(api_key, admin_token),
         lambda api: set_paused(api, monitor_id, paused=False, as_json=as_json))


@monitors.command("delete")
@click.argument("monitor_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@_connection
@_json_option
def delete_command(monitor_id: str, yes: bool, server: str, api_key: str, admin_token: str, as_json: bool) -> None:
    """Delete MONITOR_ID with its runs' history and state changes (asks first unless --yes)."""
    _run(server, _token(api_key, admin_token),
         lambda api: delete(api, monitor_id, confirmed=yes, as_json=as_json))


@monitors.command("events")
@click.argument("monitor_id")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="At most this many.")
@_connection
@_json_option
def events_command(monitor_id: str, limit: int, server: str, api_key: str, admin_token: str, as_json: bool) -> None:
    """MONITOR_ID's state changes, newest first, with their evidence and their webhook's delivery."""
    _run(server, _token(api_key, admin_token),
         lambda api: list_events(api, monitor_id, limit=limit, as_json=as_json))


@monitors.command("watch")
@click.argument("monitor_id")
@click.option("--json", "as_json", is_flag=True, help="Print each event as one line of JSON.")
@_connection
def watch_command(monitor_id: str, as_json: bool, server: str, api_key: str, admin_token: str) -> None:
    """Print MONITOR_ID's runs and state changes as they happen, until Ctrl-C."""
    _run(server, _token(api_key, admin_token), lambda api: watch(api, monitor_id, as_json=as_json))
