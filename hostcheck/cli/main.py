"""The `hostcheck` command: run a service, an agent, the embedded dev system, or a check."""

from __future__ import annotations

import asyncio
import importlib
import signal
import sys

import click

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
        asyncio.run(_serve_until_signal(lambda: service.start(conf), lambda s: s.stop()))


_service_command("registry", cfg.RegistryConfig, "Run the registry service (agents: registration, listing, stats).")
_service_command("results", cfg.ResultsConfig, "Run the results service (checks, results, live watch).")
_service_command("scheduler", cfg.SchedulerConfig,
                 "Run a scheduler replica (agent streams, check creation and dispatch).")


@main.command()
def agent() -> None:
    """Run an agent: register if needed, hold the stream, run checks."""
    from hostcheck.agent.client import Agent
    from hostcheck.agent.identity import IdentityError

    conf = _load(cfg.AgentConfig)
    telemetry.setup("agent", conf)

    async def run() -> None:
        worker = Agent(conf)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.stop()))
        await worker.run()

    try:
        asyncio.run(run())
    except (IdentityError, cfg.ConfigError) as exc:
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
              help="Where the SQLite database and the local agent's state live.")
@click.option("--allow-target", "allow_targets", multiple=True, metavar="CIDR",
              help="Allow probing this range despite the target guard (repeatable), e.g. 127.0.0.0/8.")
@click.option("--agents", default=1, show_default=True, help="Local agents to run.")
def dev(port: int, host: str, data_dir: str, allow_targets: tuple[str, ...], agents: int) -> None:
    """Run the whole system on one machine: services, a local agent, Envoy; SQLite, in-process live state."""
    devserver = _part("hostcheck.cli.dev", "all")

    logs.setup("INFO", "text", name="dev")
    telemetry.setup_tracing("hostcheck-dev")  # off unless OTEL_* asks for an exporter
    try:
        asyncio.run(devserver.main(port=port, host=host, data_dir=data_dir, allow_targets=allow_targets,
                                   agents=agents))
    except devserver.DevError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.argument("target")
@click.option("--type", "-t", "types", multiple=True, required=True, metavar="TYPE",
              help=f"Check type: {', '.join(CHECK_TYPES)} (repeatable).")
@click.option("--server", "-s", default="127.0.0.1:8080", show_default=True, envvar="HOSTCHECK_SERVER",
              help="API address (Envoy or the scheduler), host:port.")
@click.option("--json", "as_json", is_flag=True, help="Print the final check as JSON.")
@click.option("--agents", "limit", type=int, default=0, help="At most this many agents (default 10).")
@click.option("--region", "regions", multiple=True, help="Only agents in this region (repeatable).")
@click.option("--country", "countries", multiple=True, help="Only agents in this country (repeatable).")
@click.option("--agent-id", "agent_ids", multiple=True, help="Exactly these agents (repeatable).")
@click.option("--port", type=int, default=0,
              help=f"Port for {'/'.join(t for t, spec in CHECK_TYPES.items() if spec.has_port_option)} checks.")
@click.option("--timeout-ms", type=int, default=0, help="Per-task timeout; 0 uses each type's default.")
@click.option("--option", "-o", "options", multiple=True, metavar="TYPE.FIELD=VALUE",
              help="A check type's option: a field of its options message (protos/hostcheck/v1/TYPE.proto); "
                   "a map takes KEY:VALUE, a list A,B (repeatable).")
@click.option("--strict", is_flag=True, help="Exit 1 when any probe failed, even if the check completed.")
def check(target: str, types: tuple[str, ...], server: str, as_json: bool, limit: int, regions, countries,
          agent_ids, port: int, timeout_ms: int, options: tuple[str, ...], strict: bool) -> None:
    """Check TARGET from agents and show results as they arrive.

    Exits 0 when the check completed, 2 when it failed or timed out, 3 on a request error.
    """
    checkcli = _part("hostcheck.cli.check", "cli")

    code = asyncio.run(checkcli.run(
        target=target, types=types, server=server, as_json=as_json, limit=limit, regions=regions,
        countries=countries, agent_ids=agent_ids, port=port, timeout_ms=timeout_ms, options=options,
        strict=strict))
    sys.exit(code)

if __name__ == "__main__":
    main()
