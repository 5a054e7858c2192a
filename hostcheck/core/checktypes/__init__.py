"""The check types: one module per type in this package, each defining `SPEC` (see base.py).

The modules are found here, not listed: adding a type is adding its module
(docs/adding-a-check-type.md). CHECK_TYPES holds them in their `order`.
"""

from __future__ import annotations

import importlib
import pkgutil

from hostcheck.core.checktypes.base import CheckType, Duration, ProbeHistogram

# Modules of this package that are not check types.
_NOT_TYPES = {"base"}


def _discover() -> dict[str, CheckType]:
    specs: list[CheckType] = []
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name in _NOT_TYPES or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        spec = getattr(module, "SPEC", None)
        if not isinstance(spec, CheckType):
            raise TypeError(f"{module.__name__} defines no SPEC = CheckType(...)")
        if spec.name != module_info.name:
            raise ValueError(f"{module.__name__}: SPEC.name is {spec.name!r}; it must be the module's name")
        specs.append(spec)
    specs.sort(key=lambda spec: spec.order)
    orders = [spec.order for spec in specs]
    if len(set(orders)) != len(orders):
        raise ValueError(f"two check types share an order: {[(s.name, s.order) for s in specs]}")
    return {spec.name: spec for spec in specs}


CHECK_TYPES: dict[str, CheckType] = _discover()

__all__ = ["CHECK_TYPES", "CheckType", "Duration", "ProbeHistogram"]
