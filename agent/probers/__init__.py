"""Probers, one per file, one signature (see base.py), one registry: check type -> prober.

PROBERS has the prober of every check type that has a spec (hostcheck.core.checktypes)
and a module here of the same name; the agent offers those types as its capabilities.
"""

from __future__ import annotations

import importlib
import importlib.util

from hostcheck.agent.probers.base import ProbeError, Prober, ProbeRequest, ProbeResult
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

__all__ = ["PROBERS", "ProbeError", "ProbeRequest", "ProbeResult", "Prober"]
