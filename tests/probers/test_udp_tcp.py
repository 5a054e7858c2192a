"""udp and tcp probers against real sockets on loopback."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from hostcheck.agent.probers import tcp, udp
from hostcheck.v1 import tcp_pb2, udp_pb2
from tests.helpers import free_port, within
from tests.probers.conftest import probe_request, run


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.transport.sendto(b"echo:" + data + b"\x00\xff", addr)


@pytest.fixture(scope="module")
async def udp_echo():
    """A UDP echo server on 127.0.0.1 and ::1 (same port): replies 'echo:' + payload + 00 ff."""
    loop = asyncio.get_running_loop()
    v4, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    port = v4.get_extra_info("sockname")[1]
    v6, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("::1", port))
    yield port
    v4.close()
    v6.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
async def test_udp_open_port_replies(udp_echo, host):
    result = await run(udp.probe, probe_request(f"{host}:{udp_echo}", udp_pb2.UdpOptions(payload="hi")))
    assert result.success, result
    data = result.data
    assert data.state == "open" and data.address == host.strip("[]")
    assert data.reply_hex == b"echo:hi\x00\xff".hex() and data.reply_text == "echo:hi.."
    assert data.reply_size == 9 and data.payload_size == 2 and data.rtt_ms > 0


async def test_udp_payload_hex_and_port_option(udp_echo):
    result = await run(udp.probe, probe_request("127.0.0.1", udp_pb2.UdpOptions(port=udp_echo,
                                                                                   payload_hex="0001ff")))
    assert result.success and result.data.reply_hex == (b"echo:\x00\x01\xff\x00\xff").hex()


async def test_udp_empty_datagram_is_sent(udp_echo):
    # asyncio's transport.sendto(b"") sends nothing on Python 3.11; the default payload is empty.
    result = await run(udp.probe, probe_request(f"127.0.0.1:{udp_echo}", udp_pb2.UdpOptions()))
    assert result.success, result
    assert (result.data.payload_size, result.data.reply_hex) == (0, b"echo:\x00\xff".hex())


async def test_udp_closed_port():
    result = await run(udp.probe, probe_request(f"127.0.0.1:{free_port()}", udp_pb2.UdpOptions(payload="x")))
    assert (result.success, result.error_code, result.data.state) == (False, "closed", "closed"), result


async def test_udp_silent_port_is_open_filtered():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        started = time.perf_counter()
        result = await run(udp.probe, probe_request(f"127.0.0.1:{silent.getsockname()[1]}",
                                                    udp_pb2.UdpOptions(payload="x"), timeout=0.4))
    assert (result.success, result.error_code, result.data.state) == (False, "no_reply", "open|filtered")
    assert time.perf_counter() - started < within(0.4)


@pytest.mark.parametrize(("target", "options", "code"), [
    ("127.0.0.1", udp_pb2.UdpOptions(), "bad_target"),
    ("127.0.0.1:53", udp_pb2.UdpOptions(payload_hex="zz"), "bad_options"),
])
async def test_udp_bad_input(target, options, code):
    result = await run(udp.probe, probe_request(target, options))
    assert (result.success, result.error_code) == (False, code)


@pytest.fixture(scope="module")
async def tcp_listener():
    async def handle(reader, writer):
        writer.close()
    v4 = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = v4.sockets[0].getsockname()[1]
    v6 = await asyncio.start_server(handle, "::1", port)
    yield port
    for server in (v4, v6):
        server.close()


@pytest.fixture
def full_backlog():
    """A listener whose accept queue is full: the kernel drops further SYNs, so connecting times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    clients = []
    try:
        for _ in range(16):
            client = socket.socket()
            client.settimeout(0.2)
            clients.append(client)
            try:
                client.connect(listener.getsockname())
            except TimeoutError:
                break
        else:
            pytest.skip("could not fill a listen backlog on this kernel")
        yield listener.getsockname()[1]
    finally:
        for client in clients:
            client.close()
        listener.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
async def test_tcp_connects(tcp_listener, host):
    result = await run(tcp.probe, probe_request(f"{host}:{tcp_listener}", tcp_pb2.TcpOptions()))
    assert result.success, result
    assert result.data.address == host.strip("[]") and result.data.port == tcp_listener
    assert result.data.connect_ms > 0


async def test_tcp_refused():
    result = await run(tcp.probe, probe_request("127.0.0.1", tcp_pb2.TcpOptions(port=free_port())))
    assert (result.success, result.error_code) == (False, "refused"), result
    assert "connection refused" in result.error and result.data.address == "127.0.0.1"


async def test_tcp_timeout_is_told_apart_from_refused(full_backlog):
    started = time.perf_counter()
    result = await run(tcp.probe, probe_request(f"127.0.0.1:{full_backlog}", tcp_pb2.TcpOptions(), timeout=0.5))
    assert (result.success, result.error_code) == (False, "timeout"), result
    assert "timed out" in result.error
    assert time.perf_counter() - started < within(0.5)


async def test_tcp_ip_version_must_match_an_ip_target(tcp_listener):
    result = await run(tcp.probe, probe_request(f"127.0.0.1:{tcp_listener}", tcp_pb2.TcpOptions(), ip_version=6))
    assert (result.success, result.error_code) == (False, "bad_target")
