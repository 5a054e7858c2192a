"""The http prober's path for checks that offer HTTP/2 (`options.http2`): httpx with h2.

Imported by http.probe only for such a check, so an agent that never runs one never
loads httpx, httpcore, anyio or h2. Phase timings come from httpcore's `trace`
extension; TLS details from the connection's `ssl_object`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import httpx

from hostcheck.agent.probers.base import ProbeError, ms
from hostcheck.agent.probers.http import (
    Body,
    Hop,
    _authority,
    _cause,
    _Exchange,
    _tls,
    request_headers,
)
from hostcheck.core.targets import IPAddress
from hostcheck.v1 import http_pb2


class _Timeline:
    """Times of httpcore's trace events, by name without the http11./http2. prefix."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    async def __call__(self, event: str, info: dict) -> None:
        scope, _, name = event.partition(".")
        self.marks[name if scope in ("http11", "http2", "connection") else event] = time.perf_counter()

    def span(self, start: str, end: str) -> float | None:
        if start in self.marks and end in self.marks:
            return ms(self.marks[end] - self.marks[start])
        return None

    def phase(self) -> str:
        """The phase a request stopped in."""
        marks = self.marks
        if "receive_response_headers.complete" in marks:
            return "download"
        if "send_request_headers.started" in marks:
            return "first_byte"
        if "start_tls.started" in marks:
            return "tls"
        return "connect"


def _failure(exc: httpx.HTTPError) -> tuple[str, str]:
    """(error_code, message) of a failed request, from the most specific cause."""
    known = _cause(exc)
    if known:
        return known
    if isinstance(exc, httpx.ConnectError):
        return "connect_error", str(exc)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return "protocol_error", str(exc)
    return "http_error", f"{type(exc).__name__}: {exc}"


@asynccontextmanager
async def session(context) -> AsyncIterator[Hop]:
    """A hop function for one check's requests. No keep-alive: each hop makes its own connection."""
    async with httpx.AsyncClient(verify=context, http2=True, follow_redirects=False, trust_env=False,
                                 limits=httpx.Limits(max_keepalive_connections=0)) as client:
        yield partial(_hop, client)


async def _hop(client: httpx.AsyncClient, *, method: str, scheme: str, host: str, port: int, path: str,
               addr: IPAddress, options, context, deadline: float) -> _Exchange:
    """One request to `addr`, its body read up to the limit (`context` is the client's already)."""
    ip_host = f"[{addr}]" if addr.version == 6 else str(addr)
    headers = request_headers(_authority(host, port, scheme), options.headers)
    timeline = _Timeline()
    started = time.perf_counter()
    remaining = deadline - started
    where = f"{method} {scheme}://{_authority(host, port, scheme)}{path}"
    try:
        async with asyncio.timeout(max(remaining, 0.001)):
            request = client.build_request(
                method, f"{scheme}://{ip_host}:{port}{path}", headers=headers,
                content=options.body.encode() if options.body else None,
                extensions={"sni_hostname": host, "trace": timeline,
                            "timeout": {"connect": remaining, "read": remaining, "write": remaining,
                                        "pool": remaining}})
            response = await client.send(request, stream=True)
            try:
                headers_at = time.perf_counter()
                body = Body(keep=bool(options.body_regexp))
                if method != "HEAD":
                    async for chunk in response.aiter_bytes():
                        if not body.add(chunk):
                            break
                done = time.perf_counter()
                tls = _tls(response.extensions.get("network_stream"))
            finally:
                await response.aclose()
    except TimeoutError as exc:
        raise ProbeError("timeout", f"{where}: timed out in {timeline.phase()} after {ms(time.perf_counter() - started)} ms",
                         http_pb2.HttpResult(address=str(addr), phase=timeline.phase())) from exc
    except httpx.TimeoutException as exc:
        raise ProbeError("timeout", f"{where}: timed out in {timeline.phase()} after "
                                    f"{ms(time.perf_counter() - started)} ms ({type(exc).__name__})",
                         http_pb2.HttpResult(address=str(addr), phase=timeline.phase())) from exc
    except httpx.HTTPError as exc:
        code, message = _failure(exc)
        raise ProbeError(code, f"{where}: {message}",
                         http_pb2.HttpResult(address=str(addr), phase=timeline.phase())) from exc
    sent = "send_request_body.complete" if "send_request_body.complete" in timeline.marks else \
        "send_request_headers.complete"
    timings = http_pb2.HttpTimings(
        tcp_ms=timeline.span("connect_tcp.started", "connect_tcp.complete"),
        tls_ms=timeline.span("start_tls.started", "start_tls.complete"),
        first_byte_ms=timeline.span(sent, "receive_response_headers.complete"),
        download_ms=ms(done - headers_at))
    return _Exchange(status_code=response.status_code, reason=response.reason_phrase,
                     http_version=response.http_version, headers=dict(response.headers), timings=timings,
                     body=body, tls=tls,
                     charset=response.charset_encoding)
