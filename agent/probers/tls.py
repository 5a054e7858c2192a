"""tls: a TLS handshake with host:port, as `openssl s_client -connect host:port -servername name` makes it.

Connect (timed), optionally STARTTLS (smtp, imap, pop3, ftp; timed), then the
handshake (timed) with the agent's roots and the server name checked. A chain
that does not verify is reported with OpenSSL's reason (`verify_error`) and
then fetched with a second, unverified handshake, so its certificates are
reported too (the timings are those of that second, completed handshake). The
check fails on such a chain unless `insecure` is set, and when a certificate has
fewer than `min_days_left` days left.
"""

from __future__ import annotations

import asyncio
import ssl
import time

from hostcheck.agent.probers import _certs, _net, _starttls
from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, budget, ms, resolve
from hostcheck.core.checktypes.tls import DEFAULT_ALPN, DEFAULT_PORT
from hostcheck.v1 import tls_pb2


def _where(data: tls_pb2.TlsResult) -> str:
    shown = f"[{data.address}]" if ":" in data.address else data.address
    return f"{shown}:{data.port}"


async def _handshake(data: tls_pb2.TlsResult, *, server_hostname: str, context: ssl.SSLContext, starttls: str,
                     deadline: float) -> asyncio.StreamWriter:
    """Connect, STARTTLS, handshake, each phase timed into `data`; the TLS stream's writer.

    ssl.SSLCertVerificationError passes through (the caller retries unverified); every other failure is a
    ProbeError naming the phase.
    """
    phase = "connect"
    started = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(max(deadline - started, 0.001)):
            reader, writer = await asyncio.open_connection(data.address, data.port)
            connected = time.perf_counter()
            data.connect_ms = ms(connected - started)
            if starttls:
                phase = "starttls"
                await _starttls.negotiate(starttls, reader, writer)
            phase = "handshake"
            upgraded = time.perf_counter()
            data.starttls_ms = ms(upgraded - connected) if starttls else 0.0
            await writer.start_tls(context, server_hostname=server_hostname or None)
            data.handshake_ms = ms(time.perf_counter() - upgraded)
            return writer
    except ssl.SSLCertVerificationError:
        _abort(writer)
        raise
    except TimeoutError as exc:
        _abort(writer)
        data.phase = phase
        raise ProbeError("timeout", f"{_where(data)}: timed out in {phase} after "
                         f"{ms(time.perf_counter() - started)} ms", data) from exc
    except _starttls.StartTlsError as exc:
        _abort(writer)
        data.phase = phase
        raise ProbeError("starttls_error", f"{_where(data)}: {starttls} STARTTLS: {exc}", data) from exc
    except (OSError, asyncio.IncompleteReadError) as exc:
        _abort(writer)
        data.phase = phase
        code, message = _net.describe(exc) or ("network_error", type(exc).__name__)
        raise ProbeError(code, f"{_where(data)}: {phase}: {message}", data) from exc


def _abort(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.transport.abort()


async def prepare(request: ProbeRequest) -> bool:
    """What this check loads the first time (probers.prepare): the SSL context and the certificate parser."""
    built = _certs.built(_certs.client_context, True, tuple(request.options.alpn) or DEFAULT_ALPN)
    return await _certs.ready() or built


async def probe(request: ProbeRequest) -> ProbeResult:
    options = request.options
    port = options.port or request.target.port or DEFAULT_PORT
    deadline = time.perf_counter() + budget(request)
    alpn = tuple(options.alpn) or DEFAULT_ALPN
    # Built (the context) and loaded (the certificate parser) by an agent's first tls check before its clock starts.
    context = _certs.client_context(True, alpn)
    await _certs.ready()
    started = time.perf_counter()
    addr = (await resolve(request, port=port))[0]
    # SNI: the name asked for, else the target's name; an address target sends none (RFC 6066) and its
    # certificate is checked against the address, as curl and openssl s_client -verify_ip do.
    server_name = options.server_name or request.target.host
    data = tls_pb2.TlsResult(address=str(addr), port=port, ip_version=addr.version,
                             server_name="" if request.target.ip is not None and not options.server_name
                             else server_name, dns_ms=ms(time.perf_counter() - started))
    starttls = options.starttls.lower()
    try:
        writer = await _handshake(data, server_hostname=server_name, context=context,
                                  starttls=starttls, deadline=deadline)
    except ssl.SSLCertVerificationError as exc:
        data.verify_error = str(exc.verify_message or exc.reason or exc)
        # Again without verification, to report the chain that failed.
        writer = await _handshake(data, server_hostname=server_name, context=_certs.client_context(False, alpn),
                                  starttls=starttls, deadline=deadline)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        cipher = ssl_object.cipher() or ("", "", 0)
        data.version, data.cipher, data.cipher_bits = ssl_object.version() or "", cipher[0], cipher[2] or 0
        data.alpn = ssl_object.selected_alpn_protocol() or ""
        data.verified = not data.verify_error
        data.chain.extend(_certs.chain(ssl_object, now=time.time()))
        if data.chain:
            data.days_left = min(cert.days_left for cert in data.chain)
    finally:
        writer.transport.abort()  # no close_notify wait: the measurement is done
    if data.verify_error and not options.insecure:
        return ProbeResult(False, data, f"{_where(data)}: certificate verify failed: {data.verify_error}",
                           "certificate_invalid")
    if options.min_days_left and data.chain and data.days_left < options.min_days_left:
        soonest = min(data.chain, key=lambda cert: cert.days_left)
        return ProbeResult(False, data, f"{soonest.subject or soonest.sha256} has {soonest.days_left} days left, "
                                        f"fewer than {options.min_days_left}", "certificate_expiring")
    return ProbeResult(True, data)
