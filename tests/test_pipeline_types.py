"""udp, icmp ping, traceroute and dns through the whole pipeline (CreateCheck -> scheduler -> a real agent ->
prober -> results -> GetCheck), each with options that only reach the prober if the API, the plan, the task
and the agent all carry them: the result shows them applied.

(tcp and http: test_pipeline.py; dns over tcp, ping and traceroute over tcp and mtr through `hostcheck dev`
and the CLI: test_dev_path_checks.py.)
"""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from hostcheck.agent.probers import dns
from hostcheck.v1 import dns_pb2, ping_pb2, results_pb2, scheduler_pb2, traceroute_pb2, udp_pb2
from tests.helpers import Proc, assert_eventually, free_port
from tests.probers.conftest import probe_request
from tests.probers.servers import dnsmasq_args


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(b"echo:" + data, addr)


@pytest.fixture
async def udp_echo():
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    yield transport.get_extra_info("sockname")[1]
    transport.close()


@pytest.fixture
async def resolver(tmp_path):
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed (scripts/setup-system.sh installs dnsmasq-base)")
    port = free_port()
    proc = Proc(dnsmasq_args(port=port), env=dict(os.environ), log_path=tmp_path / "dnsmasq.log")
    address = f"127.0.0.1:{port}"
    try:
        async def answering() -> bool:
            assert proc.alive(), proc.output()
            return (await dns.probe(probe_request("www.t.test", dns_pb2.DnsOptions(resolver=address),
                                                  timeout=0.3))).success
        await assert_eventually(answering, timeout=10, message="dnsmasq answers")
        yield address
    finally:
        proc.stop()


async def run_check(system, **request) -> results_pb2.CheckResult:
    created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(**request))
    async for event in system.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id=created.check_id),
                                                timeout=30):
        if event.event == "done":
            break
    check = (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=created.check_id))).check
    assert check.status == "completed", check
    (result,) = check.results
    return result


async def test_udp_ping_traceroute_and_dns_options_reach_the_agent(pg_system, tmp_path, udp_echo, resolver):
    await pg_system.start_agent(tmp_path, "a1")

    udp = await run_check(pg_system, target="127.0.0.1", checks=["udp"],
                          udp=udp_pb2.UdpOptions(port=udp_echo, payload="hello from the API"))
    assert udp.success, udp.error
    assert (udp.data.udp.port, udp.data.udp.payload_size, udp.data.udp.reply_text) == (
        udp_echo, len("hello from the API"), "echo:hello from the API")

    ping = await run_check(pg_system, target="127.0.0.1", checks=["ping"],
                           ping=ping_pb2.PingOptions(count=3, interval_ms=100, size=100))
    if not ping.success and "ping_group_range" in ping.error:
        pytest.skip("no ICMP socket may be opened here (net.ipv4.ping_group_range)")
    assert ping.success, ping.error
    assert (ping.data.ping.packets_sent, ping.data.ping.packets_received, ping.data.ping.size) == (3, 3, 100)

    trace = await run_check(pg_system, target="127.0.0.1", checks=["traceroute"],
                            traceroute=traceroute_pb2.TracerouteOptions(max_hops=4, probes_per_hop=3))
    assert trace.success, trace.error
    data = trace.data.traceroute
    assert (data.max_hops, data.probes_per_hop, data.destination_reached) == (4, 3, True)
    assert [(h.address, len(h.rtts_ms)) for h in data.hops] == [("127.0.0.1", 3)]

    # The agent's own default resolver (1.1.1.1) is unreachable here: only the option's resolver answers.
    answer = await run_check(pg_system, target="t.test", checks=["dns"],
                             dns=dns_pb2.DnsOptions(record_type="TXT", resolver=resolver, protocol="tcp"))
    assert answer.success, answer.error
    d = answer.data.dns
    assert (d.record_type, d.resolver, d.protocol, [a.value for a in d.answers]) == (
        "TXT", resolver, "tcp", ['"v=spf1 -all"'])
