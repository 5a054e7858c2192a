"""Runs one check through the agent's runner and prints the result as JSON (snake_case, as users see it).

For probes that must start inside a network namespace or as another user:
    ip netns exec NS .venv/bin/python -m tests.probers.run_probe ping 10.99.2.2 --options '{"count": 4}'
"""

from __future__ import annotations

import argparse
import asyncio
import json

from google.protobuf import json_format

from hostcheck.agent.probers import ProbeSettings
from hostcheck.agent.runner import run_task
from hostcheck.core.targets import TargetGuard
from hostcheck.v1 import checks_pb2, scheduler_pb2


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("check_type")
    parser.add_argument("target")
    parser.add_argument("--options", default="{}", help="the type's options message as JSON")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds")
    parser.add_argument("--ip-version", type=int, default=0)
    parser.add_argument("--allow", action="append", default=[], help="CIDR the guard allows (repeatable)")
    parser.add_argument("--dns-resolver", default=ProbeSettings().dns_resolver,
                        help="the agent's default resolver for dns checks ('system': /etc/resolv.conf)")
    parser.add_argument("--dns-private-zones", action="store_true", help="allow dns checks of private zones")
    args = parser.parse_args()
    options = checks_pb2.CheckOptions()
    json_format.ParseDict(json.loads(args.options), getattr(options, args.check_type))
    task = scheduler_pb2.Task(task_id="t", check_id="c", check_type=args.check_type, target=args.target,
                              options=options, timeout_ms=int(args.timeout * 1000), ip_version=args.ip_version)
    settings = ProbeSettings(dns_resolver=args.dns_resolver, dns_private_zones=args.dns_private_zones)
    result = await run_task(task, TargetGuard.from_cidrs(args.allow), settings=settings)
    print(json.dumps(json_format.MessageToDict(result, preserving_proto_field_name=True,
                                               always_print_fields_with_no_presence=True)))


if __name__ == "__main__":
    asyncio.run(main())
