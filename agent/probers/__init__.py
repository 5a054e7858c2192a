"""Probers, one per file, one signature (see base.py), one registry: check type -> prober.

PROBERS has the prober of every check type that has a spec (hostcheck.core.checktypes)
and a module here of the same name; the agent offers those types as its capabilities.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from hostcheck.agent.probers.base import ProbeError, Prober, ProbeRequest, ProbeResult, ProbeSettings
from hostcheck.core.checktypes import CHECK_TYPES


def _load() -> dict[str, Prober]:
    probers: dict[str, Prober] = {}
    for name in CHECK_TYPES:
        module_name = f"{__name__}.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue  # a type this agent cannot run (yet): it does not offer it
        probers[name] = importlib.import_module(module_name).probe
    return probers


PROBERS: dict[str, Prober] = _load()


def warm_up(probers: dict[str, Prober] | None = None) -> None:
    """Runs each prober module's `warm()` (if it has one) once, at agent start: what a prober would
    otherwise load or build lazily inside its first check's timings (issue 14 found 77 ms of a first
    http check in no phase) is paid before any check. What only some checks need (the certificate
    parser and SSL contexts, dnspython, RE2: ~15 MB of an idle agent's RSS) is not warmed: the first
    check that needs it loads it before its clock starts (issue 17, tests/probers/test_first_check_loads.py)."""
    for prober in (PROBERS if probers is None else probers).values():
        module = sys.modules.get(getattr(prober, "__module__", "") or "")
        if module is None or not module.__name__.startswith(f"{__name__}."):
            continue  # a prober from elsewhere (a test's fake) has no warm-up here
        warm = getattr(module, "warm", None)
        if callable(warm):
            warm()


async def prepare(check_type: str, request: ProbeRequest, probers: dict[str, Prober] | None = None) -> bool:
    """Loads what this check needs that the agent has not loaded yet (the certificate parser and SSL
    contexts, dnspython, RE2, httpx: what `warm_up` leaves to the first check that needs it), through
    its prober module's `async def prepare(request) -> bool`. True when it loaded something: the
    caller (the runner) starts the task's clock after it, so `duration_ms` excludes a one-time load
    as the probers' own timings do (each prober also loads what it needs before its clock starts)."""
    prober = (PROBERS if probers is None else probers).get(check_type)
    module = sys.modules.get(getattr(prober, "__module__", "") or "")
    if module is None or not module.__name__.startswith(f"{__name__}."):
        return False
    hook = getattr(module, "prepare", None)
    return bool(await hook(request)) if callable(hook) else False


def check_settings(settings: ProbeSettings, probers: dict[str, Prober] | None = None) -> None:
    """Runs each prober module's `check_settings(settings)` (if it has one) at agent start: a malformed
    operator setting (e.g. HOSTCHECK_DNS_RESOLVER) fails loudly then, not in every check that reads it."""
    for prober in (PROBERS if probers is None else probers).values():
        module = sys.modules.get(getattr(prober, "__module__", "") or "")
        if module is None or not module.__name__.startswith(f"{__name__}."):
            continue
        check = getattr(module, "check_settings", None)
        if callable(check):
            check(settings)


__all__ = ["PROBERS", "ProbeError", "ProbeRequest", "ProbeResult", "ProbeSettings", "Prober", "check_settings",
           "prepare", "warm_up"]
