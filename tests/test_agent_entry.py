"""`hostcheck agent` starts from the light entry (hostcheck/cli/main.py) without click, the rest of the
command line, OpenTelemetry (tracing off) or c-ares (~3 MB of an idle agent's RSS, issue 17), and says
the same as the click command line did; every other command line is click's, unchanged."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from click.testing import CliRunner

from hostcheck.cli.main import main
from tests.helpers import VENV_BIN, hostcheck_cmd

# Modules the agent's start must not load (tracing off: the default).
HEAVY = ("click", "opentelemetry", "pycares", "_cffi_backend", "hostcheck.cli.commands", "hostcheck.cli.monitors")


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HOSTCHECK_", "OTEL_"))}
    return subprocess.run(args, env={**base, **env}, capture_output=True, text=True, timeout=60)


# The console script's code, recording the modules loaded when the process exits.
ENTRY = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = ["hostcheck", *sys.argv[1:]]
from hostcheck.cli.main import main
main()
"""


@pytest.mark.parametrize("args", [["agent"], ["agent", "--register-only"]])
def test_the_agent_starts_without_the_command_line_or_tracing(args):
    # A setting the agent refuses once everything it runs with is imported: the process ends there.
    done = run([str(VENV_BIN / "python"), "-c", ENTRY, *args], HOSTCHECK_EVENT_LOOP="bogus")
    assert done.returncode == 1, done.stderr[-2000:]
    error, modules = done.stderr.strip().split("\n")
    assert error == "Error: HOSTCHECK_EVENT_LOOP='bogus': expected one of uvloop, asyncio"
    loaded = json.loads(modules)
    assert "hostcheck.agent.client" in loaded and "hostcheck.agent.probers.dns" in loaded
    assert not [m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY]


def test_the_module_loaded_for_any_other_command_line_is_clicks():
    done = run([str(VENV_BIN / "python"), "-c", ENTRY, "agent", "--help"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "hostcheck.cli.commands" in json.loads(done.stderr)


@pytest.mark.parametrize(("args", "env", "message"), [
    (["agent"], {"HOSTCHECK_SCHEDULER_ADRR": "x"}, "Error: configuration: unknown setting(s): HOSTCHECK_SCHEDULER_ADRR"),
    (["agent", "--register-only"], {"HOSTCHECK_STATE_FILE": "/nonexistent/none.json"},
     "Error: no agent token in /nonexistent/none.json and no registration token (HOSTCHECK_REGISTRATION_TOKEN"),
])
@pytest.mark.parametrize("entry", ["script", "module"])
def test_errors_are_what_click_printed(args, env, message, entry):
    command = [str(VENV_BIN / "hostcheck"), *args] if entry == "script" else hostcheck_cmd(*args)
    done = run(command, **env)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [["agent", "--help"], ["agent", "-h"]])
def test_other_agent_command_lines_are_clicks(args):
    done = run(hostcheck_cmd(*args))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: ") and "agent [OPTIONS]" in done.stdout.splitlines()[0]
    assert "--register-only" in done.stdout


def test_an_unknown_option_is_refused_by_click():
    done = run(hostcheck_cmd("agent", "--regster-only"))
    assert done.returncode == 2
    assert "No such option '--regster-only'" in done.stderr


def test_main_is_still_the_click_group_for_callers():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Run an agent" in result.output and "monitors" in result.output
    assert main.name == "main"
