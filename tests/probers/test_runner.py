"""Every type through the agent's runner against loopback: results arrive typed, under their type's field."""

from __future__ import annotations

import asyncio

import pytest
from google.protobuf import json_format

from hostcheck.agent.probers import PROBERS, ProbeError, ProbeResult
from hostcheck.agent.runner import run_task
from hostcheck.core.targets import TargetGuard
from hostcheck.v1 import checks_pb2, dns_pb2, ping_pb2, scheduler_pb2, tcp_pb2, udp_pb2
from tests.helpers import free_port

GUARD = TargetGuard.from_cidrs(["127.0.0.0/8", "::1/128"])


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.transport.sendto(data, addr)


def _task(check_type: str, target: str, timeout_ms: int = 3000, **options) -> scheduler_pb2.Task:
    return scheduler_pb2.Task(task_id="t1", check_id="c1", check_type=check_type, target=target,
                              timeout_ms=timeout_ms, options=checks_pb2.CheckOptions(**options))


async def _run(check_type: str, target: str, timeout_ms: int = 3000, **options) -> dict:
    result = await run_task(_task(check_type, target, timeout_ms, **options), GUARD)
    return json_format.MessageToDict(result, preserving_proto_field_name=True)


async def test_each_type_reports_through_the_runner(http_server, dnsmasq):
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    udp_port = echo.get_extra_info("sockname")[1]
    try:
        results = {
            "http": await _run("http", f"http://127.0.0.1:{http_server.port}/"),
            "tcp": await _run("tcp", f"127.0.0.1:{http_server.port}"),
            "dns": await _run("dns", "www.t.test", dns=dns_pb2.DnsOptions(resolver=dnsmasq.resolver)),
            "udp": await _run("udp", f"127.0.0.1:{udp_port}", udp=udp_pb2.UdpOptions(payload="x")),
            "ping": await _run("ping", "::1", ping=ping_pb2.PingOptions(count=2, interval_ms=100)),
        }
    finally:
        echo.close()
    for check_type, result in results.items():
        assert result.get("success"), (check_type, result)
        assert list(result["data"]) == [check_type], result
        assert result["data"][check_type]["address" if check_type != "dns" else "resolver"], result
    assert "tls_ms" not in results["http"]["data"]["http"]["timings"]  # plain http: no TLS phase
    assert results["http"]["data"]["http"]["status_code"] == 200
    assert results["ping"]["data"]["ping"]["packets_received"] == 2


async def test_a_failure_is_a_result_with_its_code_and_what_was_measured():
    result = await _run("udp", f"127.0.0.1:{free_port()}")
    assert (result.get("success", False), result["error_code"], result["data"]["udp"]["state"]) == (
        False, "closed", "closed")


async def test_an_address_refused_by_the_guard_is_reported():
    # resolve() knows no result type: it names the address, and the runner sets it on the type's result.
    result = await run_task(_task("tcp", "10.1.2.3:80"), GUARD)
    assert (result.success, result.error_code) == (False, "target_refused")
    assert result.data.WhichOneof("result") == "tcp" and result.data.tcp.address == "10.1.2.3"


async def test_a_prober_error_carries_its_partial_result():
    async def half_done(request):
        raise ProbeError("refused", "went wrong", tcp_pb2.TcpResult(port=7, dns_ms=1.5), address="192.0.2.9")

    result = await run_task(_task("tcp", "127.0.0.1:7"), GUARD, {"tcp": half_done})
    assert (result.success, result.error_code, result.error) == (False, "refused", "went wrong")
    assert result.data.tcp == tcp_pb2.TcpResult(port=7, dns_ms=1.5, address="192.0.2.9")


async def test_a_crashing_prober_is_an_agent_error_with_an_empty_result_of_its_type():
    async def crash(request):
        raise RuntimeError("boom")

    result = await run_task(_task("tcp", "127.0.0.1:7"), GUARD, {"tcp": crash})
    assert (result.success, result.error_code, result.error) == (False, "agent_error", "RuntimeError: boom")
    assert result.data.WhichOneof("result") == "tcp" and result.data.tcp == tcp_pb2.TcpResult()


async def test_a_result_of_another_type_is_an_agent_error():
    async def confused(request):
        return ProbeResult(True, ping_pb2.PingResult(address="127.0.0.1"))

    result = await run_task(_task("tcp", "127.0.0.1:7"), GUARD, {"tcp": confused})
    assert (result.success, result.error_code) == (False, "agent_error")
    assert "PingResult" in result.error and result.data.tcp == tcp_pb2.TcpResult()


async def test_a_type_the_agent_does_not_know_is_unsupported():
    result = await run_task(_task("smtp", "127.0.0.1:25"), GUARD)
    assert (result.success, result.error_code) == (False, "unsupported")
    assert result.data.WhichOneof("result") is None


async def test_the_task_timeout_bounds_a_prober():
    async def hang(request):
        await asyncio.Event().wait()

    result = await run_task(_task("tcp", "127.0.0.1:7", timeout_ms=100), GUARD, {**PROBERS, "tcp": hang})
    assert (result.success, result.error_code) == (False, "timeout")
    assert result.data.WhichOneof("result") == "tcp"


@pytest.mark.parametrize("check_type", ["ping", "traceroute"])
async def test_icmp_types_through_the_runner(check_type):
    result = await _run(check_type, "127.0.0.1")
    if result.get("error_code") == "icmp_not_permitted":
        pytest.skip(f"this process may not open ICMP sockets: {result['error']}")
    assert result.get("success"), result
    assert result["data"][check_type]["address"] == "127.0.0.1"
