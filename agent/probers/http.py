"""http: one request (redirects followed as a chain): status, headers, phase timings, TLS, the body.

The whole body is read (up to MAX_BODY_BYTES, 10 MB, as blackbox_exporter's body_size_limit),
so `body_size` is its true size and the download phase the whole transfer (as curl's
time_total); the result keeps the first BODY_CAP (10 KiB) as a sample. `body_regexp` and
`header_regexp` are matched with RE2 off the event loop, over the whole body.

Each hop resolves its host itself (under the guard) and connects to that
address, so the address used is known and a redirect to a private address is
refused like any other target. No keep-alive: every hop makes its own
connection, so its timings are whole.

HTTP/1.1 (http and https) runs on asyncio directly, with h11 for the framing:
`loop.create_connection` (connect phase), `loop.start_tls` (tls phase), the request
written, the response read. A check that offers HTTP/2 (`options.http2`) goes
through httpx (_http2.py), imported only then: an agent that never runs one
never loads httpx, httpcore, anyio or h2.

Trust: the default verify paths, so an agent trusts a private CA through
SSL_CERT_FILE / SSL_CERT_DIR (read when the first https check builds the
context, which is also when OpenSSL's context machinery is first set up).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
import socket
import ssl
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import cast
from urllib.parse import urljoin

import h11

from hostcheck import __version__
from hostcheck.agent.probers import _certs
from hostcheck.agent.probers._certs import tls_info, trust_default_roots
from hostcheck.agent.probers._net import describe
from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, budget, ms, resolve
from hostcheck.core.errors import InvalidArgument
from hostcheck.core.targets import IPAddress, Target, TargetError, parse_target
from hostcheck.v1 import http_pb2

# The body's sample kept in the result.
BODY_CAP = 10 * 1024
# The most of a body read (decoded); a longer one is cut there (body_over_limit).
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 10
USER_AGENT = f"hostcheck-agent/{__version__}"

# What every request carries unless the check's headers say otherwise: what httpx sent (it decoded
# gzip and deflate bodies, so it offered them), but no keep-alive: the connection serves one request.
_DEFAULT_HEADERS = (("Accept", "*/*"), ("Accept-Encoding", "gzip, deflate"), ("Connection", "close"))
_REDIRECT_CODES = (301, 302, 303, 307, 308)
# Loaded by the first check that needs them (see `prepare`).
_HTTP2 = "hostcheck.agent.probers._http2"
_REGEX = "hostcheck.core.regex"
# Bytes read at a time, and h11's limit on a response head (httpcore's values).
_READ_SIZE = 64 * 1024
_MAX_HEAD = 100 * 1024


@lru_cache(maxsize=4)
def ssl_context(http2: bool, verify: bool = True) -> ssl.SSLContext:
    """The shared context for one ALPN offer and verification choice.

    httpcore (the HTTP/2 path) sets the ALPN protocols on the context it is given
    before each handshake; one context per offer keeps that write the same every time.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # what create_default_context sets, less the roots
    if verify:
        trust_default_roots(context)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1", "h2"] if http2 else ["http/1.1"])
    return context


def _url(target: Target, options) -> tuple[str, str, int, str]:
    scheme = options.scheme or target.scheme or ("https" if (options.port or target.port) == 443 else "http")
    port = options.port or target.port or (443 if scheme == "https" else 80)
    path = options.path or target.path or "/"
    return scheme, target.host, port, path


def _authority(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == {"http": 80, "https": 443}[scheme] else f"{shown}:{port}"


def _tls(stream) -> http_pb2.TlsInfo | None:
    """The TLS session of a connection (asyncio transport or httpcore stream), its chain parsed."""
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    return tls_info(ssl_object, now=time.time())


def _text(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------- failures


class HttpError(Exception):
    """A failed exchange. The subclasses are named after httpx's exceptions for the same failures:
    the error codes and messages an http check reports are the ones it reported with httpx."""


class ConnectError(HttpError):
    """The connection or its TLS handshake failed."""


class TlsError(ConnectError):
    """The TLS handshake failed in a way the ssl module raises no SSLError for."""


class ProtocolError(HttpError):
    """The server's response (or our request, as h11 checks it) broke HTTP/1.1."""


class ReadError(HttpError):
    """The connection failed while the response was read (e.g. reset by the server)."""


class DecodingError(HttpError):
    """The body does not decode as its Content-Encoding says."""


def _cause(exc: BaseException) -> tuple[str, str] | None:
    """(error_code, message) from the most specific cause in exc's chain, if one is known (see _net)."""
    return describe(exc)


def _failure(exc: HttpError) -> tuple[str, str]:
    """(error_code, message) of a failed request, from the most specific cause."""
    known = _cause(exc)
    if known:
        return known
    if isinstance(exc, TlsError):
        return "tls_error", f"TLS: {exc}"
    if isinstance(exc, ConnectError):
        return "connect_error", str(exc)
    if isinstance(exc, ProtocolError):
        return "protocol_error", str(exc)
    return "http_error", f"{type(exc).__name__}: {exc}"


def _reason(exc: BaseException) -> str:
    """What went wrong, never empty (asyncio raises some errors with no message)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    named: dict[type[BaseException], str] = {ConnectionResetError: "connection reset",
                                             ConnectionAbortedError: "connection aborted",
                                             BrokenPipeError: "connection closed"}
    return str(exc) or named.get(type(exc), type(exc).__name__)


# ---------------------------------------------------------------------------------------------- one exchange


@dataclass
class _Exchange:
    """One request and its response, read and closed."""

    status_code: int
    reason: str
    http_version: str
    # Lower-case names; the values of a repeated header joined with ", ".
    headers: dict[str, str]
    # Phases of the request; a phase that did not happen (no TLS on http) is unset.
    timings: http_pb2.HttpTimings
    # The decoded body as read (all of it up to MAX_BODY_BYTES, or its sample: see Body).
    body: Body
    tls: http_pb2.TlsInfo | None
    # The Content-Type's charset, that the body is decoded with.
    charset: str | None
    # The connection's TLS session when `tls` is still to be read from it: parsing a chain takes ~1 ms
    # a certificate, which is no phase of the request, so the last hop's is parsed after its timings.
    ssl_object: ssl.SSLObject | None = None

    def tls_info(self) -> http_pb2.TlsInfo | None:
        return self.tls if self.ssl_object is None else tls_info(self.ssl_object, now=time.time())

    @property
    def location(self) -> str | None:
        """Where a redirect points; None when the response is no redirect."""
        return self.headers.get("location") if self.status_code in _REDIRECT_CODES else None


class Body:
    """A response body as it is read: its size, its first BODY_CAP bytes, and all of it (up to
    MAX_BODY_BYTES) only when a check matches it (`keep`), so an agent holds 10 KiB per check, not 10 MB."""

    def __init__(self, *, keep: bool) -> None:
        self.keep = keep
        self.size = 0
        # The body was longer than MAX_BODY_BYTES: reading stopped there.
        self.over_limit = False
        self._data = bytearray()

    def add(self, data: bytes) -> bool:
        """Counts and keeps `data`; False once MAX_BODY_BYTES are read (the rest is not read)."""
        room = MAX_BODY_BYTES - self.size
        if len(data) > room:
            data, self.over_limit = data[:room], True
        self.size += len(data)
        limit = MAX_BODY_BYTES if self.keep else BODY_CAP
        if len(self._data) < limit:
            self._data += data[:limit - len(self._data)]
        return not self.over_limit

    @property
    def sample(self) -> bytes:
        return bytes(self._data[:BODY_CAP])

    @property
    def whole(self) -> bytes:
        """All of it as read; only for a body kept whole."""
        assert self.keep, "the body was not kept whole"
        return bytes(self._data)


# A hop: one request to an address, its body read up to MAX_BODY_BYTES (keyword arguments as _hop's).
Hop = Callable[..., Awaitable[_Exchange]]


def _charset(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type, lower-cased: what httpx read with email.message's
    get_content_charset (RFC 2231 `charset*=` aside), without loading the email package."""
    if content_type is None:
        return None
    for param in _params(content_type):
        name, eq, value = param.partition("=")
        if name.strip().lower() == "charset":
            value = _unquote(value.strip()) if eq else ""
            return value.lower() if value.isascii() else None
    return None


def _params(value: str) -> list[str]:
    """A header value split at the semicolons not inside quotes (email.message's _parseparam)."""
    params = []
    rest = ";" + value
    while rest[:1] == ";":
        rest = rest[1:]
        end = rest.find(";")
        while end > 0 and (rest.count('"', 0, end) - rest.count('\\"', 0, end)) % 2:
            end = rest.find(";", end + 1)
        if end < 0:
            end = len(rest)
        params.append(rest[:end].strip())
        rest = rest[end:]
    return params


def _unquote(value: str) -> str:
    if len(value) > 1 and value[0] == value[-1] == '"':
        return value[1:-1].replace("\\\\", "\\").replace('\\"', '"')
    if len(value) > 1 and value[0] == "<" and value[-1] == ">":
        return value[1:-1]
    return value


class _Identity:
    def decode(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _Zlib:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it), decoded as httpx does."""

    def __init__(self, gzip: bool) -> None:
        self._retry_raw = not gzip
        self._decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)

    def decode(self, data: bytes) -> bytes:
        retry_raw, self._retry_raw = self._retry_raw, False
        try:
            # At most one byte past the body limit per piece: a small gzip bomb cannot inflate to gigabytes
            # in memory. The input left over (unconsumed_tail) is never needed: reading stops at the limit.
            return self._decompressor.decompress(data, MAX_BODY_BYTES + 1)
        except zlib.error as exc:
            if retry_raw:
                self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data)
            raise DecodingError(str(exc)) from exc

    def flush(self) -> bytes:
        try:
            return self._decompressor.flush()
        except zlib.error as exc:
            raise DecodingError(str(exc)) from exc


class _Decoder:
    """The body through each of its Content-Encodings, last applied first; unknown codings are left as they are."""

    def __init__(self, content_encoding: str | None) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",")] if content_encoding else []
        self._stages: list[_Identity | _Zlib] = [
            _Identity() if c == "identity" else _Zlib(gzip=c == "gzip")
            for c in reversed(codings) if c in ("identity", "gzip", "deflate")]

    def decode(self, data: bytes) -> bytes:
        for stage in self._stages:
            data = stage.decode(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for stage in self._stages:
            data = stage.decode(data) + stage.flush()
        return data


class _Stream(asyncio.Protocol):
    """What one connection receives, kept for one reader: the data, then its end (EOF or the error)."""

    def __init__(self) -> None:
        # Not checked with isinstance: uvloop's transports do not derive from asyncio's classes.
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._paused = False
        # EOF or the connection lost: nothing more will come after the buffer.
        self.ended = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # a stream's (loop.create_connection)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= _READ_SIZE and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> None:
        self.ended = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.ended:
            self._error = exc
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        """The bytes received since the last read; b"" at the end; the connection's error after its data."""
        while not self._buffer:
            if self._error is not None:
                raise self._error
            if self.ended:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        """Closes at once: no TLS close_notify, no waiting for the rest of a body (as httpx closed)."""
        if self.transport is not None:
            self.transport.abort()


# The characters a request target keeps as they are (the rest is percent-encoded): httpx's sets, after
# the WHATWG URL standard's path and query percent-encode sets.
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_QUERY_SAFE = _UNRESERVED + "".join(chr(i) for i in range(0x21, 0x7F) if chr(i) not in '"#<>')
_PATH_SAFE = "".join(c for c in _QUERY_SAFE if c not in "?`{}")
_PERCENT_ESCAPE = re.compile("%[A-Fa-f0-9]{2}")


def _quote(text: str, safe: str) -> str:
    """Percent-encodes what is not safe, leaving %XX escapes as they are."""
    out = []
    for piece in re.split(r"(%[A-Fa-f0-9]{2})", text):
        if _PERCENT_ESCAPE.fullmatch(piece):
            out.append(piece)
        else:
            out.append("".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in piece))
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    if "." not in path or not {".", ".."} & set(path.split("/")):
        return path
    output: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if output and output != [""]:
                output.pop()
        elif segment != ".":
            output.append(segment)
    return "/".join(output)


def _request_target(path: str) -> bytes:
    """The request line's target for `path` (with its query), as httpx built it from the URL."""
    bad = next((c for c in path if c.isascii() and not c.isprintable()), None)
    if bad is not None:
        raise ValueError(f"non-printable character {bad!r} in the path")
    path, _, _fragment = path.partition("#")
    path, question, query = path.partition("?")
    target = _quote(_remove_dot_segments(path), _PATH_SAFE) or "/"
    if question:
        target += "?" + _quote(query, _QUERY_SAFE)
    return target.encode("ascii")


def _request(method: str, authority: str, path: str, options) -> tuple[bytes, list[tuple[bytes, bytes]], bytes | None]:
    """The request's target, headers (the check's over the default ones) and body.

    ValueError: what the check asks for cannot be sent (a header that is not ASCII, a control
    character in the path). h11 checks the rest when the request is sent.
    """
    body = options.body.encode() if options.body else None
    given = request_headers(authority, options.headers)
    names = {name.lower() for name in given}
    headers = [(name, value) for name, value in _DEFAULT_HEADERS if name.lower() not in names]
    headers += given.items()
    if body is not None and "content-length" not in names:
        headers.append(("Content-Length", str(len(body))))
    elif body is None and method in ("POST", "PUT", "PATCH") and not names & {"content-length", "transfer-encoding"}:
        headers.insert(0, ("Content-Length", "0"))
    try:
        encoded = [(name.encode("ascii"), value.encode("ascii")) for name, value in headers]
    except UnicodeEncodeError as exc:
        raise ValueError(f"headers must be ASCII: {exc.object!r}") from exc
    return _request_target(path), encoded, body


def request_headers(authority: str, extra) -> dict[str, str]:
    """Host and User-Agent, each replaced by a check's header of the same name in any case (`host`
    replaces Host: one Host header, as curl -H sends), then the check's other headers."""
    given = {name.lower() for name in extra}
    headers = {name: value for name, value in (("Host", authority), ("User-Agent", USER_AGENT))
               if name.lower() not in given}
    headers.update(extra)
    return headers


async def _next_event(conn: h11.Connection, stream: _Stream) -> object:
    """The next thing the server sent, reading as needed."""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(str(exc)) from exc
        if event is not h11.NEED_DATA:
            return event
        try:
            data = await stream.read()
        except Exception as exc:  # noqa: BLE001 - whatever ended the connection (reset, a TLS alert, ...)
            raise ReadError(_reason(exc)) from exc
        if data == b"" and conn.their_state == h11.SEND_RESPONSE:
            raise ProtocolError("Server disconnected without sending a response.")
        conn.receive_data(data)


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """A response's headers by lower-case name, decoded as ASCII, else UTF-8, else Latin-1 (as httpx did)."""
    encoding = "iso-8859-1"
    for candidate in ("ascii", "utf-8"):
        try:
            for name, value in raw:
                name.decode(candidate)
                value.decode(candidate)
        except UnicodeDecodeError:
            continue
        encoding = candidate
        break
    out: dict[str, str] = {}
    for name, value in raw:
        key, text = name.lower().decode(encoding), value.decode(encoding)
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


@dataclass
class _Progress:
    """How far an exchange got: the phase a failure or timeout stopped it in."""

    phase: str = "connect"


async def _exchange(stream: _Stream, progress: _Progress, *, method: str, scheme: str, host: str, port: int,
                    addr: IPAddress, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes | None,
                    context: ssl.SSLContext | None, keep_body: bool) -> _Exchange:
    loop = asyncio.get_running_loop()
    tcp_started = time.perf_counter()
    try:
        transport, _ = await loop.create_connection(lambda: stream, str(addr), port)
    except OSError as exc:
        raise ConnectError(_reason(exc)) from exc
    tcp_done = time.perf_counter()
    tls_ms = None
    if scheme == "https":
        assert context is not None
        progress.phase = "tls"
        if stream.ended:  # start_tls would wait for a handshake on a closed connection
            raise ConnectError("connection closed by the server")
        try:
            tls_transport = await loop.start_tls(transport, stream, context, server_hostname=host)
        except ConnectionResetError as exc:
            if exc.errno is None:  # asyncio's word for EOF in the handshake; OpenSSL's (and httpx's) is this
                raise TlsError("UNEXPECTED_EOF_WHILE_READING") from exc
            raise ConnectError(_reason(exc)) from exc
        except OSError as exc:  # ssl.SSLError is an OSError
            raise ConnectError(_reason(exc)) from exc
        if tls_transport is None:
            raise ConnectError("connection closed during the TLS handshake")
        stream.transport = tls_transport
        tls_ms = ms(time.perf_counter() - tcp_done)

    progress.phase = "first_byte"
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
    try:
        out = conn.send(h11.Request(method=method.encode("ascii"), target=target, headers=headers)) or b""
        if body:
            out += conn.send(h11.Data(data=body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError as exc:
        raise ProtocolError(str(exc)) from exc
    stream.write(out)
    sent = time.perf_counter()
    while True:
        event = await _next_event(conn, stream)
        # Interim responses (100 Continue, 103 Early Hints) come before the response; 101 is the response.
        if isinstance(event, h11.Response) or (isinstance(event, h11.InformationalResponse)
                                               and event.status_code == 101):
            break
    headers_at = time.perf_counter()
    progress.phase = "download"
    response_headers = _headers(list(event.headers.raw_items()))
    received = Body(keep=keep_body)
    if method != "HEAD":
        decoder = _Decoder(response_headers.get("content-encoding"))
        while True:
            part = await _next_event(conn, stream)
            more = received.add(decoder.decode(bytes(part.data)) if isinstance(part, h11.Data)
                                else decoder.flush())  # EndOfMessage, or PAUSED after a 101
            if not more or not isinstance(part, h11.Data):
                break
    done = time.perf_counter()
    timings = http_pb2.HttpTimings(tcp_ms=ms(tcp_done - tcp_started), tls_ms=tls_ms,
                                   first_byte_ms=ms(headers_at - sent), download_ms=ms(done - headers_at))
    return _Exchange(status_code=event.status_code, reason=event.reason.decode("ascii", errors="ignore"),
                     http_version="HTTP/" + event.http_version.decode("ascii", errors="ignore"), headers=response_headers,
                     timings=timings, body=received, tls=None, charset=_charset(response_headers.get("content-type")),
                     ssl_object=stream.transport.get_extra_info("ssl_object") if stream.transport else None)


async def _hop(*, method: str, scheme: str, host: str, port: int, path: str, addr: IPAddress, options,
               context: ssl.SSLContext | None, deadline: float) -> _Exchange:
    """One HTTP/1.1 request to `addr` on a connection of its own, its body read up to MAX_BODY_BYTES."""
    authority = _authority(host, port, scheme)
    where = f"{method} {scheme}://{authority}{path}"
    try:
        target, headers, body = _request(method, authority, path, options)
    except ValueError as exc:
        raise ProbeError("bad_options", f"{where}: {exc}", http_pb2.HttpResult(address=str(addr))) from exc
    progress = _Progress()
    stream = _Stream()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(max(deadline - started, 0.001)):
            return await _exchange(stream, progress, method=method, scheme=scheme, host=host, port=port,
                                   addr=addr, target=target, headers=headers, body=body, context=context,
                                   keep_body=bool(options.body_regexp))
    except TimeoutError as exc:
        raise ProbeError("timeout", f"{where}: timed out in {progress.phase} after {ms(time.perf_counter() - started)} ms",
                         http_pb2.HttpResult(address=str(addr), phase=progress.phase)) from exc
    except HttpError as exc:
        code, message = _failure(exc)
        raise ProbeError(code, f"{where}: {message}",
                         http_pb2.HttpResult(address=str(addr), phase=progress.phase)) from exc
    finally:
        stream.close()


# ---------------------------------------------------------------------------------------------- the probe


async def prepare(request: ProbeRequest) -> bool:
    """What this check loads the first time (probers.prepare): httpx for HTTP/2, the SSL context and the
    certificate parser for https, RE2 for a regular expression. True when it loaded something."""
    options = request.options
    verify = not options.insecure_tls
    loaded = False
    if options.http2 and _HTTP2 not in sys.modules:
        await asyncio.to_thread(importlib.import_module, _HTTP2)
        loaded = True
    if options.http2 or _url(request.target, options)[0] == "https":
        loaded = _certs.built(ssl_context, options.http2, verify) or loaded
        loaded = await _certs.ready() or loaded
    if (options.body_regexp or options.header_regexp) and _REGEX not in sys.modules:
        await asyncio.to_thread(importlib.import_module, _REGEX)
        loaded = True
    return loaded


async def probe(request: ProbeRequest) -> ProbeResult:
    options = request.options
    verify = not options.insecure_tls
    if options.http2:
        # httpx, httpcore, anyio and h2 (~135 modules, ~10 MB): only for a check that offers HTTP/2.
        from hostcheck.agent.probers import _http2

        async with _http2.session(ssl_context(True, verify)) as hop:
            return await _follow(request, hop)
    return await _follow(request, _hop)


async def _follow(request: ProbeRequest, hop: Hop) -> ProbeResult:
    """The request and the redirects it is sent, each hop by `hop`; the result of the last."""
    options = request.options
    method = (options.method or "GET").upper()
    follow = options.follow_redirects if options.HasField("follow_redirects") else True
    verify = not options.insecure_tls
    scheme, host, port, path = _url(request.target, options)
    deadline = time.perf_counter() + budget(request)
    chain: list[http_pb2.HttpRedirect] = []
    current = request
    if scheme == "https":
        ssl_context(options.http2, verify)
        await _certs.ready()
    # The clock starts here: building the shared SSL context, or loading the certificate parser, on an
    # agent's first https check is not the target's time.
    started = time.perf_counter()
    for _hop_number in range(MAX_REDIRECTS + 1):
        # Only https needs a context (and creating the first one sets OpenSSL up: ~2 MB).
        context = ssl_context(options.http2, verify) if scheme == "https" or options.http2 else None
        hop_started = time.perf_counter()
        url = f"{scheme}://{_authority(host, port, scheme)}{path}"
        try:
            addr = (await resolve(current, port=port))[0]
            resolved = time.perf_counter()
            exchange = await hop(method=method, scheme=scheme, host=host, port=port, path=path, addr=addr,
                                 options=options, context=context, deadline=deadline)
        except ProbeError as exc:
            partial = exc.partial(http_pb2.HttpResult)
            partial.url = url
            partial.redirects.extend(chain)
            exc.data = partial
            raise
        timings = exchange.timings
        timings.dns_ms = ms(resolved - hop_started)
        timings.total_ms = ms(time.perf_counter() - hop_started)
        location = exchange.location
        if not (follow and location):
            break
        chain.append(http_pb2.HttpRedirect(url=url, address=str(addr), status_code=exchange.status_code,
                                           location=location, duration_ms=timings.total_ms))
        try:
            current = ProbeRequest(target=parse_target(urljoin(url, location)), options=options,
                                   timeout=request.timeout, ip_version=request.ip_version, guard=request.guard)
        except TargetError as exc:
            raise ProbeError("bad_redirect", f"redirect to {location!r}: {exc}",
                             http_pb2.HttpResult(redirects=chain)) from exc
        scheme = current.target.scheme or scheme
        host = current.target.host
        port = current.target.port or (443 if scheme == "https" else 80)
        path = current.target.path or "/"
        if exchange.status_code in (301, 302, 303) and method != "HEAD":
            method = "GET"
    else:
        raise ProbeError("too_many_redirects", f"more than {MAX_REDIRECTS} redirects",
                         http_pb2.HttpResult(redirects=chain))
    body = exchange.body
    data = http_pb2.HttpResult(
        url=url, address=str(addr), ip_version=addr.version, method=method, status_code=exchange.status_code,
        reason=exchange.reason, http_version=exchange.http_version, headers=exchange.headers,
        body=_text(body.sample, exchange.charset), body_size=body.size,
        body_truncated=body.size > BODY_CAP, body_over_limit=body.over_limit, redirects=chain,
        timings=timings, total_ms=ms(time.perf_counter() - started))
    if exchange.ssl_object is not None:
        await _certs.ready()  # already loaded unless a redirect led from http to https
    tls = exchange.tls_info()
    if tls is not None:
        data.tls.CopyFrom(tls)
    expected = list(options.expected_status)
    if not (exchange.status_code in expected if expected else 200 <= exchange.status_code < 400):
        wanted = ", ".join(map(str, expected)) if expected else "200-399"
        return ProbeResult(False, data, f"status {exchange.status_code}, expected {wanted}", "unexpected_status")
    versions = [_http_version(v) for v in options.valid_http_versions]
    if versions and exchange.http_version not in versions:
        return ProbeResult(False, data, f"{exchange.http_version}, expected {', '.join(versions)}",
                           "unexpected_http_version")
    if options.fail_if_ssl and tls is not None:
        return ProbeResult(False, data, f"{url} was served over TLS (fail_if_ssl)", "unexpected_tls")
    if options.fail_if_not_ssl and tls is None:
        return ProbeResult(False, data, f"{url} was not served over TLS (fail_if_not_ssl)", "no_tls")
    if options.body_regexp or options.header_regexp:
        remaining = max(deadline - time.perf_counter(), 0.001)
        try:
            async with asyncio.timeout(remaining):
                # RE2 is linear in the input, but 10 MB still takes tens of ms: never on the event loop.
                failure = await asyncio.get_running_loop().run_in_executor(
                    None, _match, options, exchange.headers, body, exchange.charset)
        except TimeoutError as exc:
            raise ProbeError("timeout", f"matching the regular expressions timed out after {ms(remaining)} ms",
                             data) from exc
        except InvalidArgument as exc:
            violation = exc.violations[0]
            raise ProbeError("bad_options", f"{violation.field}: {violation.reason}", data) from exc
        if failure:
            return ProbeResult(False, data, *failure)
    return ProbeResult(True, data)


def _http_version(name: str) -> str:
    """A version as the result names it: HTTP/2.0 (blackbox's spelling) is HTTP/2."""
    name = name.strip().upper()
    return "HTTP/2" if name in ("HTTP/2.0", "HTTP/2") else name


def _match(options, headers: dict[str, str], body: Body, charset: str | None) -> tuple[str, str] | None:
    """The first failed regular expression as (message, code), or None (runs in a thread)."""
    from hostcheck.core.regex import compile_pattern  # RE2 (~1 MB of RSS): loaded by the first check with one

    for i, rule in enumerate(options.header_regexp):
        name = rule.header.lower()
        pattern = compile_pattern(f"http.header_regexp[{i}].regexp", rule.regexp)
        value = headers.get(name)
        if value is None:
            if rule.allow_missing:
                continue
            return f"no {rule.header} header (header_regexp)", "header_mismatch"
        matched = pattern.search(value) is not None
        if matched and rule.fail_if_matches:
            return f"{rule.header}: {value[:200]!r} matches {rule.regexp!r}", "header_mismatch"
        if not matched and not rule.fail_if_matches:
            return f"{rule.header}: {value[:200]!r} does not match {rule.regexp!r}", "header_mismatch"
    if options.body_regexp:
        pattern = compile_pattern("http.body_regexp", options.body_regexp)
        if pattern.search(_text(body.whole, charset)) is None:
            where = f"the first {body.size} bytes of the body" if body.over_limit else "the body"
            return f"{where} does not match {options.body_regexp!r}", "body_mismatch"
    return None


def warm() -> None:
    """What an agent's first http check would otherwise pay inside its timings: h11's request writer, the
    resolver's libraries. Not what only https needs (the SSL context: ~0.7 MB of RSS with the trust
    store; the certificate parser: ~10 MB): an https check builds and loads those before its clock starts."""
    with contextlib.suppress(OSError):  # loads the resolver's libraries (NSS), ~5-10 ms the first time
        socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=b"GET", target=b"/", headers=[(b"Host", b"warm")]))
    _Decoder("gzip").decode(b"")
    _text(b"", "utf-8")
