"""The options a check and a monitor share: which agents run it, and each check type's options.

`hostcheck check` and `hostcheck monitors create` send the same request fields (a monitor's fields 1-13
are CreateCheckRequest's), so they take the same flags, declared once here. Only click: the command
line is loaded by `hostcheck agent` too, whose install has no rich.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from hostcheck.core.checktypes import CHECK_TYPES

F = TypeVar("F", bound=Callable)

_OPTIONS = (
    click.option("--limit", "--agents", "limit", type=int, default=0,
                 help="At most this many agents (default 10)."),
    click.option("--from", "magic", multiple=True, metavar="PLACE",
                 help="Only agents in this place: a continent, country, region, city, ASN (AS3320), network or "
                      "label value; A+B: both (repeatable: any of them)."),
    click.option("--region", "regions", multiple=True, help="Only agents in this region (repeatable)."),
    click.option("--country", "countries", multiple=True, help="Only agents in this country (repeatable)."),
    click.option("--agent-id", "agent_ids", multiple=True, help="Exactly these agents (repeatable)."),
    click.option("--same-as", default="", metavar="CHECK_ID", help="The agents of an earlier check."),
    click.option("--port", type=int, default=0,
                 help=f"Port for {'/'.join(t for t, spec in CHECK_TYPES.items() if spec.has_port_option)} checks."),
    click.option("--option", "-o", "options", multiple=True, metavar="TYPE.FIELD=VALUE",
                 help="A check type's option: a field of its options message (protos/hostcheck/v1/TYPE.proto); "
                      "a map takes KEY:VALUE, a list A,B (repeatable)."),
)


def selector_options(fn: F) -> F:
    """Adds the shared flags; the command receives limit, magic, regions, countries, agent_ids, same_as,
    port and options (what hostcheck.cli.check.build_request takes)."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn
