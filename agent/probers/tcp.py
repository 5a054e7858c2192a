"""tcp: connect to host:port; the connect time and the address used; refused and timed out told apart.

With options, a short dialogue as blackbox_exporter's tcp prober runs it: STARTTLS
(`starttls`: smtp, imap, pop3, ftp, then a TLS handshake), then `send`, then
`expect` (an RE2 regular expression the data received must match, read until it
does, the server closes, 64 KiB arrive or time runs out). Whatever fails, the
result keeps what was measured (address, port, DNS and connect times).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time

from hostcheck.agent.probers import _certs, _net, _starttls
from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, budget, ms, resolve
from hostcheck.core.errors import InvalidArgument
from hostcheck.v1 import tcp_pb2

# What `expect` is matched against, and what the result shows of it.
MAX_EXPECT_BYTES = 64 * 1024
MAX_RECEIVED_SHOWN = 4 * 1024


def _port(request: ProbeRequest) -> int:
    port = request.options.port or request.target.port
    if not port:
        raise ProbeError("bad_target", "tcp needs a port (target host:port or options.port)")
    return port


async def prepare(request: ProbeRequest) -> bool:
    """What this check loads the first time (probers.prepare): RE2 for `expect`, the SSL context and the
    certificate parser for STARTTLS. True when it loaded something."""
    options = request.options
    loaded = False
    if options.expect and "hostcheck.core.regex" not in sys.modules:
        await asyncio.to_thread(importlib.import_module, "hostcheck.core.regex")
        loaded = True
    if options.starttls:
        loaded = _certs.built(_certs.client_context, not options.insecure_tls) or loaded
        loaded = await _certs.ready() or loaded
    return loaded


async def probe(request: ProbeRequest) -> ProbeResult:
    options = request.options
    port = _port(request)
    deadline = time.perf_counter() + budget(request)
    pattern = None
    if options.expect:
        from hostcheck.core.regex import compile_pattern  # RE2, loaded by the first check that needs it

        try:
            pattern = compile_pattern("tcp.expect", options.expect)
        except InvalidArgument as exc:
            raise ProbeError("bad_options", f"tcp.expect: {exc.violations[0].reason}") from exc
    context = None
    if options.starttls:
        # Built (the context) and loaded (the certificate parser) by an agent's first STARTTLS check before
        # its clock starts: neither is the target's time.
        context = _certs.client_context(not options.insecure_tls)
        await _certs.ready()
    started = time.perf_counter()
    addrs = await resolve(request, port=port)
    resolved = time.perf_counter()
    addr = addrs[0]
    data = tcp_pb2.TcpResult(address=str(addr), port=port, ip_version=addr.version, dns_ms=ms(resolved - started))
    where = f"{'[' + str(addr) + ']' if addr.version == 6 else addr}:{port}"
    phase = "connect"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(max(deadline - time.perf_counter(), 0.001)):
            reader, writer = await asyncio.open_connection(str(addr), port, limit=MAX_EXPECT_BYTES)
            connected = time.perf_counter()
            data.connect_ms = ms(connected - resolved)
            if options.starttls:
                phase = "starttls"
                await _starttls.negotiate(options.starttls.lower(), reader, writer)
                phase = "tls"
                upgraded = time.perf_counter()
                data.starttls_ms = ms(upgraded - connected)
                assert context is not None
                await writer.start_tls(context, server_hostname=request.target.host)
                data.tls_ms = ms(time.perf_counter() - upgraded)
                info = _certs.tls_info(writer.get_extra_info("ssl_object"), now=time.time())
                if info is not None:
                    data.tls.CopyFrom(info)
            if options.send or pattern is not None:
                exchanged = time.perf_counter()
                if options.send:
                    phase = "send"
                    writer.write(options.send.encode())
                    await writer.drain()
                if pattern is not None:
                    phase = "expect"
                    missed = await _expect(reader, pattern, data)
                    if missed:
                        data.response_ms = ms(time.perf_counter() - exchanged)
                        return ProbeResult(False, data, f"{where}: {missed} without a match for {options.expect!r}",
                                           "expect_mismatch")
                data.response_ms = ms(time.perf_counter() - exchanged)
    except TimeoutError as exc:
        data.phase = phase
        raise ProbeError("timeout", f"{where}: timed out in {phase} after {ms(time.perf_counter() - started)} ms",
                         data) from exc
    except _starttls.StartTlsError as exc:
        data.phase = phase
        raise ProbeError("starttls_error", f"{where}: {options.starttls} STARTTLS: {exc}", data) from exc
    except (OSError, asyncio.IncompleteReadError) as exc:
        data.phase = phase
        code, message = _net.describe(exc) or ("network_error", type(exc).__name__)
        raise ProbeError(code, f"{where}: {phase}: {message}", data) from exc
    finally:
        if writer is not None:
            writer.transport.abort()
    return ProbeResult(success=True, data=data)


async def _expect(reader: asyncio.StreamReader, pattern, data: tcp_pb2.TcpResult) -> str:
    """Reads until `pattern` matches what arrived (searched off the event loop): ""; else why it stopped."""
    received = bytearray()
    loop = asyncio.get_running_loop()
    while len(received) < MAX_EXPECT_BYTES:
        chunk = await reader.read(MAX_EXPECT_BYTES - len(received))
        if not chunk:
            return f"the server closed the connection after {len(received)} bytes"
        received += chunk
        data.received = received[:MAX_RECEIVED_SHOWN].decode("utf-8", "replace")
        text = received.decode("utf-8", "replace")
        # RE2 is linear in the input (64 KiB at most); off the loop all the same, so a slow search never stalls it.
        if await loop.run_in_executor(None, pattern.search, text) is not None:
            return ""
    return f"{MAX_EXPECT_BYTES // 1024} KiB arrived"
