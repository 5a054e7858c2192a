"""The `hostcheck` command line (click): run a service, an agent, the embedded dev system, or a check.

The console script's entry is hostcheck/cli/main.py: `hostcheck agent` starts there without loading
this module (click and the rest of the command line are ~2 MB of an idle agent's RSS; issue 17); any
other command line, `hostcheck agent --help` included, is this module's `main`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys

import click

from hostcheck.cli.checkoptions import selector_options
from hostcheck.cli.main import AgentFailed, run_agent
from hostcheck.cli.main import tune_gc as _tune_gc
from hostcheck.cli.monitors import monitors
from hostcheck.core import config as cfg
from hostcheck.core import logs, telemetry
from hostcheck.core.checktypes import CHECK_TYPES


def _load(cls, **overrides):
    try:
        return cfg.load(cls, **overrides)
    except (cfg.ConfigError, TypeError, ValueError) as exc:
        raise click.ClickException(f"configuration: {exc}") from exc


async def _serve_until_signal(start, stop) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    service = await start()
    try:
        await stopping.wait()
    finally:
        await stop(service)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hostcheck")
def main() -> None:
    """Host Checker: a self-hosted, distributed host checker.

    Settings come from HOSTCHECK_* environment variables (see `hostcheck config`).
    """


def _part(module: str, extra: str):
    """Imports a part an install may leave out (the agent's image has no services, gateway or rich)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise click.ClickException(
            f"this install lacks {exc.name} (needed by {module}): pip install 'hostcheck[{extra}]'") from exc


def _service_command(name: str, config_cls, summary: str) -> None:
    """Adds `hostcheck NAME`: runs services.NAME.service with its config until SIGINT/SIGTERM."""

    @main.command(name=name, help=summary)
    @click.option("--listen", help="Address to bind (overrides HOSTCHECK_LISTEN).")
    def run(listen: str | None) -> None:
        service = _part(f"hostcheck.services.{name}.service", "services")
        conf = _load(config_cls, listen=listen)
        telemetry.setup(name, conf)
        _tune_gc()
        asyncio.run(_serve_until_signal(lambda: service.start(conf), lambda s: s.stop()))


_service_command("registry", cfg.RegistryConfig, "Run the registry service (agents: registration, listing, stats).")
_service_command("results", cfg.ResultsConfig, "Run the results service (checks, results, live watch).")
_service_command("scheduler", cfg.SchedulerConfig,
                 "Run a scheduler replica (agent streams, check creation and dispatch).")


@main.command()
@click.option("--register-only", is_flag=True,
              help="Register (unless the state file holds an identity already), write the state file and exit: "
                   "run it with HOSTCHECK_REGISTRATION_TOKEN before the agent, which then needs no such token "
                   "(the DaemonSet's init container does this).")
def agent(register_only: bool) -> None:
    """Run an agent: register if needed, hold the stream, run checks."""
    try:
        run_agent(register_only)
    except AgentFailed as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
def migrate() -> None:
    """Apply database migrations (HOSTCHECK_DATABASE_URL) and exit."""
    db = _part("hostcheck.services.storage.db", "services")

    conf = _load(cfg.ResultsConfig)
    db.migrate(conf.database_url)
    click.echo("database schema is up to date")


@main.command("config")
def show_config() -> None:
    """List every setting with its default and meaning."""
    for cls in cfg.ALL_CONFIGS:
        click.secho(f"\n{cls.__name__}", bold=True)
        for var, default, text in cfg.describe(cls):
            click.echo(f"  {var}={default}\n      {text}")


@main.group()
def gateway() -> None:
    """The Envoy gateway in front of the services."""


@gateway.command("render")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the config here instead of stdout.")
def gateway_render(output: str | None) -> None:
    """Print envoy.yaml with upstream addresses from HOSTCHECK_GATEWAY_* settings.

    Run Envoy on the result: envoy -c FILE. Settings: LISTEN_ADDRESS, LISTEN_PORT, ADMIN_PORT,
    SCHEDULER_ADDR, RESULTS_ADDR, REGISTRY_ADDR (host:port) and DESCRIPTOR, each prefixed
    HOSTCHECK_GATEWAY_.
    """
    envoy = _part("hostcheck.gateway.envoy", "gateway")

    try:
        text = envoy.render_from_env()
    except ValueError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)


@main.command()
@click.option("--port", default=8080, show_default=True, help="Public port: UI, REST, gRPC-Web and gRPC.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the public port binds.")
@click.option("--data-dir", default=".hostcheck", show_default=True, type=click.Path(file_okay=False),
              envvar="HOSTCHECK_DATA_DIR",
              help="Where the SQLite database and the local agent's state live.")
@click.option("--allow-target", "allow_targets", multiple=True, metavar="CIDR",
              help="Allow probing this range despite the target guard (repeatable), e.g. 10.0.0.0/8. "
                   "Default: loopback (127.0.0.0/8, ::1/128) while --host is a loopback address, else nothing.")
@click.option("--agents", default=1, show_default=True, type=click.IntRange(0, 100),
              help="Local agents to run, each at its own simulated place (Frankfurt, New York, Tokyo, ...).")
@click.option("--metrics-port", default=0, type=click.IntRange(0, 65535), envvar="HOSTCHECK_METRICS_PORT",
              help="Port of /metrics (the services' Prometheus metrics, on --host; HOSTCHECK_METRICS_PORT); "
                   "default: a free port, shown in the banner.")
def dev(port: int, host: str, data_dir: str, allow_targets: tuple[str, ...], agents: int, metrics_port: int) -> None:
    """Run the whole system on one machine: services, local agents, Envoy; SQLite, in-process live state.

    Every HOSTCHECK_* setting applies as it does to the production commands (`hostcheck config`), over
    dev's defaults; the flags win. dev picks the services' internal addresses and ports itself.
    """
    devserver = _part("hostcheck.cli.dev", "all")

    logs.setup(os.environ.get("HOSTCHECK_LOG_LEVEL", "INFO"), os.environ.get("HOSTCHECK_LOG_FORMAT", "text"),
               name="dev")
    # Library chatter (alembic's migration steps, httpx's requests) says nothing a dev user acts on.
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    telemetry.setup_tracing("hostcheck-dev")  # off unless OTEL_* asks for an exporter
    try:
        asyncio.run(devserver.run(port=port, host=host, data_dir=data_dir, allow_targets=allow_targets,
                                  agents=agents, metrics_port=metrics_port))
    except devserver.DevError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.argument("target")
@click.option("--type", "-t", "types", multiple=True, required=True, metavar="TYPE",
              help=f"Check type: {', '.join(CHECK_TYPES)} (repeatable).")
@click.option("--server", "-s", default="127.0.0.1:8080", show_default=True, envvar="HOSTCHECK_SERVER",
              help="API address (Envoy or the scheduler), host:port.")
@click.option("--json", "as_json", is_flag=True, help="Print the final check as JSON.")
@selector_options
@click.option("--timeout-ms", type=int, default=0, help="Per-task timeout; 0 uses each type's default.")
@click.option("--api-key", default="", envvar="HOSTCHECK_API_KEY", show_envvar=True,
              help="Create the check with this API key (its quota; it owns the check); default: anonymous.")
# Kept so that old scripts still run: any failed probe now exits 1 without it.
@click.option("--strict", is_flag=True, hidden=True)
def check(target: str, types: tuple[str, ...], server: str, as_json: bool, limit: int, magic, regions, countries,
          agent_ids, same_as: str, port: int, timeout_ms: int, options: tuple[str, ...], api_key: str,
          strict: bool) -> None:
    """Check TARGET from agents and show results as they arrive.

    \b
    Exit codes:
      0  every probe succeeded
      1  some probes failed (or timed out), some succeeded
      2  a usage error (a bad option)
      3  the request was refused (the bad field is named)
      4  no probe succeeded
    """
    checkcli = _part("hostcheck.cli.check", "cli")

    code = asyncio.run(checkcli.run(
        target=target, types=types, server=server, as_json=as_json, limit=limit, regions=regions,
        countries=countries, agent_ids=agent_ids, port=port, timeout_ms=timeout_ms, options=options, magic=magic,
        same_as=same_as, api_key=api_key))
    sys.exit(code)

_server_option = click.option("--server", "-s", default="127.0.0.1:8080", show_default=True, envvar="HOSTCHECK_SERVER",
                              help="API address (Envoy or the results service), host:port.")
_admin_option = click.option("--admin-token", envvar="HOSTCHECK_ADMIN_TOKEN", default="", show_envvar=True,
                             help="The admin token (HOSTCHECK_ADMIN_TOKEN; `hostcheck dev` keeps one in its data "
                                  "dir, see its banner).")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print the reply as JSON.")


@main.group()
def keys() -> None:
    """API keys: each has its own quota and owns the checks it creates (needs the admin token)."""


def _keys_run(call) -> None:
    keyscli = _part("hostcheck.cli.keys", "cli")
    try:
        click.echo(asyncio.run(call(keyscli)))
    except keyscli.KeysError as exc:
        raise click.ClickException(str(exc)) from exc


@keys.command("create")
@click.argument("name")
@click.option("--quota", "quota_per_hour", default=0, type=click.IntRange(0, 1_000_000),
              help="Checks per hour; 0: the default (1000).")
@_server_option
@_admin_option
@_json_option
def keys_create(name: str, quota_per_hour: int, server: str, admin_token: str, as_json: bool) -> None:
    """Make a key called NAME; the key is printed once."""
    _keys_run(lambda k: k.create(server=server, admin_token=admin_token, name=name, quota_per_hour=quota_per_hour,
                                 as_json=as_json))


@keys.command("list")
@_server_option
@_admin_option
@_json_option
def keys_list(server: str, admin_token: str, as_json: bool) -> None:
    """List every key (never the keys themselves)."""
    _keys_run(lambda k: k.list_keys(server=server, admin_token=admin_token, as_json=as_json))


@keys.command("revoke")
@click.argument("key_id")
@_server_option
@_admin_option
@_json_option
def keys_revoke(key_id: str, server: str, admin_token: str, as_json: bool) -> None:
    """Revoke the key KEY_ID: refused from now on, by every replica."""
    _keys_run(lambda k: k.revoke(server=server, admin_token=admin_token, key_id=key_id, as_json=as_json))


# Monitors: recurring checks with quorum alerts (the commands live in hostcheck/cli/monitors.py).
main.add_command(monitors)


if __name__ == "__main__":
    main()
