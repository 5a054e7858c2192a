"""Every type through the agent's runner against loopback: results survive the trip into a Struct."""

from __future__ import annotations

import asyncio

import pytest
from google.protobuf import json_format

from hostcheck.agent.runner import run_task
from hostcheck.core.targets import TargetGuard
from hostcheck.v1 import checks_pb2, scheduler_pb2
from tests.helpers import free_port

GUARD = TargetGuard.from_cidrs(["127.0.0.0/8", "::1/128"])


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.transport.sendto(data, addr)


async def _run(check_type: str, target: str, timeout_ms: int = 3000, **options) -> dict:
    task = scheduler_pb2.Task(task_id="t1", check_id="c1", check_type=check_type, target=target,
                              timeout_ms=timeout_ms, options=checks_pb2.CheckOptions(**options))
    result = await run_task(task, GUARD)
    return json_format.MessageToDict(result, preserving_proto_field_name=True)


async def test_each_type_reports_through_the_runner(http_server, dnsmasq):
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    udp_port = echo.get_extra_info("sockname")[1]
    try:
        results = {
            "http": await _run("http", f"http://127.0.0.1:{http_server.port}/"),
            "tcp": await _run("tcp", f"127.0.0.1:{http_server.port}"),
            "dns": await _run("dns", "www.t.test", dns=checks_pb2.DnsOptions(resolver=dnsmasq.resolver)),
            "udp": await _run("udp", f"127.0.0.1:{udp_port}", udp=checks_pb2.UdpOptions(payload="x")),
            "ping": await _run("ping", "::1", ping=checks_pb2.PingOptions(count=2, interval_ms=100)),
        }
    finally:
        echo.close()
    for check_type, result in results.items():
        assert result.get("success"), (check_type, result)
        assert result["data"]["address" if check_type != "dns" else "resolver"], result
    assert results["http"]["data"]["timings"]["tls_ms"] is None
    assert results["ping"]["data"]["packets_received"] == 2


async def test_a_failure_is_a_result_with_its_code():
    result = await _run("udp", f"127.0.0.1:{free_port()}")
    assert (result.get("success", False), result["error_code"], result["data"]["state"]) == (False, "closed", "closed")


@pytest.mark.parametrize("check_type", ["ping", "traceroute"])
async def test_icmp_types_through_the_runner(check_type):
    result = await _run(check_type, "127.0.0.1")
    if result.get("error_code") == "icmp_not_permitted":
        pytest.skip(f"this process may not open ICMP sockets: {result['error']}")
    assert result.get("success"), result
