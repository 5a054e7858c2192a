"""The `hostcheck` command's entry (the console script's `main`, and `python -m hostcheck.cli`).

`hostcheck agent` and `hostcheck agent --register-only` start the agent from here without loading
click and the rest of the command line (hostcheck/cli/commands.py): ~2 MB of an idle agent's RSS
(issue 17, docs/benchmarks.md). Every other command line, `hostcheck agent --help` and any other
option included, goes to the click command line, which runs the agent through the same `run_agent`;
what a user sees (output, errors as `Error: ...`, exit codes) is the same either way.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from hostcheck.core import config as cfg
from hostcheck.core import telemetry


class AgentFailed(Exception):
    """The agent cannot start or register: the message is what the command prints after `Error: `."""


def tune_gc() -> None:
    """Keeps what the imports made (~90,000 objects that live as long as the process) out of every
    collection, and collects the young generation less often: a full collection scanned them all,
    70-180 ms on a shared 2-core machine (up to 1 s under load), stalling every live event and
    stream of the process meanwhile (issue 17, docs/benchmarks.md).

    Then gives the memory the imports' garbage freed back to the system (glibc's malloc_trim: free
    pages inside the heap, not only at its top): ~0.7 MB of an idle agent's RSS (issue 17). Not
    glibc (musl has no malloc_trim): nothing to do."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_agent(register_only: bool) -> None:
    """Runs an agent: register if needed, hold the stream, run checks (or only register). AgentFailed
    for a bad configuration or identity."""
    from hostcheck.agent.client import Agent, event_loop_factory
    from hostcheck.agent.identity import IdentityError

    try:
        conf = cfg.load(cfg.AgentConfig)
    except (cfg.ConfigError, TypeError, ValueError) as exc:
        raise AgentFailed(f"configuration: {exc}") from exc
    telemetry.setup("agent", conf)

    async def run() -> None:
        worker = Agent(conf)
        if register_only:
            await worker.register()
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.stop()))
        tune_gc()  # as the services: ~5-10 % less CPU per check under load (docs/benchmarks.md)
        await worker.run()

    try:
        with asyncio.Runner(loop_factory=event_loop_factory(conf.event_loop)) as runner:
            runner.run(run())
    except (IdentityError, cfg.ConfigError) as exc:
        raise AgentFailed(str(exc)) from exc


def _agent_only(argv: list[str]) -> bool | None:
    """For `agent` alone -> False, `agent --register-only` -> True; None for any other command line."""
    if argv == ["agent"]:
        return False
    if argv == ["agent", "--register-only"]:
        return True
    return None


def _agent_command(register_only: bool) -> None:
    """`hostcheck agent` as click's standalone mode runs it: `Error: ...` and exit code 1 on failure,
    `Aborted!` on Ctrl-C before the agent's own signal handling, else exit code 0."""
    try:
        run_agent(register_only)
    except AgentFailed as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\nAborted!", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


def _click_main():
    from hostcheck.cli.commands import main as click_main

    return click_main


class _Entry:
    """`main`: called without arguments (the console script) on `agent [--register-only]`, runs the
    agent without click; anything else, and every attribute (click's `main`, `name`,
    `add_command`: what CliRunner and callers use), is the click group's."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:
            register_only = _agent_only(sys.argv[1:])
            if register_only is not None:
                return _agent_command(register_only)
        return _click_main()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(_click_main(), name)


main = _Entry()


if __name__ == "__main__":
    main()
