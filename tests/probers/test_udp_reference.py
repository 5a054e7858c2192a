"""The udp prober against `nmap -sU` on loopback: the same port, the same state name.

nmap's UDP scan says `open` when a datagram comes back, `closed` on ICMP port unreachable and
`open|filtered` when nothing comes back; the prober promises the same names (agent/probers/udp.py).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket

import pytest

from hostcheck.agent.probers import udp
from hostcheck.v1 import udp_pb2
from tests.helpers import free_port
from tests.probers.conftest import probe_request, run

NMAP = shutil.which("nmap")
pytestmark = pytest.mark.skipif(NMAP is None, reason="nmap is missing: scripts/setup-system.sh installs it")


class _Reply(asyncio.DatagramProtocol):
    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.transport.sendto(b"reply", addr)


async def nmap_state(port: int) -> str:
    """What `nmap -sU` says of 127.0.0.1:port (no host discovery, no DNS, one retry)."""
    proc = await asyncio.create_subprocess_exec(
        NMAP, "-sU", "-Pn", "-n", "--max-retries", "1", "--host-timeout", "30s", "-p", str(port), "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    found = re.search(rf"^{port}/udp\s+(\S+)", out.decode(), re.M)
    assert found, out.decode()
    return found.group(1)


async def prober_state(port: int, timeout: float = 1.0) -> str:
    result = await run(udp.probe, probe_request(f"127.0.0.1:{port}", udp_pb2.UdpOptions(payload="x"),
                                                timeout=timeout))
    return result.data.state


async def test_a_port_that_answers_is_open_for_both():
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Reply, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        assert await prober_state(port) == await nmap_state(port) == "open"
    finally:
        transport.close()


async def test_a_port_with_no_socket_is_closed_for_both():
    port = free_port()
    assert await prober_state(port) == await nmap_state(port) == "closed"


async def test_a_silent_port_is_open_filtered_for_both():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        assert await prober_state(port, timeout=0.5) == await nmap_state(port) == "open|filtered"
