"""http: one request (redirects followed as a chain): status, headers, phase timings, TLS, a capped body.

Each hop resolves its host itself (under the guard) and connects to that
address, so the address used is known and a redirect to a private address is
refused like any other target. Phase timings come from httpcore's `trace`
extension; TLS details from the connection's `ssl_object`.

Trust: the default verify paths, so an agent trusts a private CA through
SSL_CERT_FILE / SSL_CERT_DIR (read when the first https check builds the
context).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urljoin

import httpx

from hostcheck import __version__
from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, budget, ms, resolve
from hostcheck.core.targets import IPAddress, Target, TargetError, parse_target
from hostcheck.v1 import http_pb2

BODY_CAP = 10 * 1024
MAX_REDIRECTS = 10
USER_AGENT = f"hostcheck-agent/{__version__}"

_NAME_KEYS = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
              "localityName": "L", "stateOrProvinceName": "ST", "emailAddress": "emailAddress"}


@lru_cache(maxsize=4)
def ssl_context(http2: bool, verify: bool = True) -> ssl.SSLContext:
    """The shared context for one ALPN offer and verification choice.

    httpcore sets the ALPN protocols on the context it is given before each
    handshake; one context per offer keeps that write the same every time.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # what create_default_context sets, less the roots
    if verify:
        _trust_default_roots(context)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1", "h2"] if http2 else ["http/1.1"])
    return context


def _trust_default_roots(context: ssl.SSLContext) -> None:
    """The system's roots, from the hashed certificate directory when there is one.

    `load_default_certs` parses the whole CA bundle into memory (Debian's: ~140 roots, 2.4 MB of
    an agent's RSS and 35 ms of CPU per context); OpenSSL reads a hashed directory
    (/etc/ssl/certs, `c_rehash`) one root at a time, when a handshake needs it. A bundle named by
    SSL_CERT_FILE (a private CA) is loaded as given, and so is the default bundle where no hashed
    directory exists.
    """
    paths = ssl.get_default_verify_paths()
    explicit_file = os.environ.get(paths.openssl_cafile_env)
    if not explicit_file and paths.capath and any(name.endswith(".0") for name in _listdir(paths.capath)):
        context.load_verify_locations(capath=paths.capath)
    else:
        context.load_default_certs()


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


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


def _url(target: Target, options) -> tuple[str, str, int, str]:
    scheme = options.scheme or target.scheme or ("https" if (options.port or target.port) == 443 else "http")
    port = options.port or target.port or (443 if scheme == "https" else 80)
    path = options.path or target.path or "/"
    return scheme, target.host, port, path


def _authority(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == {"http": 80, "https": 443}[scheme] else f"{shown}:{port}"


def _name(rdns) -> str:
    return ", ".join(f"{_NAME_KEYS.get(k, k)}={v}" for rdn in rdns for k, v in rdn)


def _tls(stream) -> http_pb2.TlsInfo | None:
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    out = http_pb2.TlsInfo(version=ssl_object.version() or "", cipher=cipher[0] if cipher else "",
                           alpn=ssl_object.selected_alpn_protocol() or "",
                           verified=ssl_object.context.verify_mode == ssl.CERT_REQUIRED)
    der = ssl_object.getpeercert(binary_form=True)
    # Without verification the ssl module gives only the DER bytes: the fingerprint identifies it.
    cert = ssl_object.getpeercert() if out.verified else None
    if der and not cert:
        out.certificate.sha256 = hashlib.sha256(der).hexdigest()
    if cert:
        not_after = ssl.cert_time_to_seconds(cert["notAfter"])
        out.certificate.CopyFrom(http_pb2.Certificate(
            subject=_name(cert.get("subject", ())),
            issuer=_name(cert.get("issuer", ())),
            sans=[f"{kind}:{value}" if kind != "DNS" else value for kind, value in cert.get("subjectAltName", ())],
            serial=cert.get("serialNumber", ""),
            not_before=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ssl.cert_time_to_seconds(cert["notBefore"]))),
            not_after=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(not_after)),
            days_left=int((not_after - time.time()) // 86400),
            sha256=hashlib.sha256(der).hexdigest() if der else ""))
    return out


def _text(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def _failure(exc: httpx.HTTPError) -> tuple[str, str]:
    """(error_code, message) of a failed request, from the most specific cause."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "tls_error", f"certificate verify failed: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return "tls_error", f"TLS: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return "refused", "connection refused"
        if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "unreachable", cause.strerror or str(cause)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return "connect_error", str(exc)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return "protocol_error", str(exc)
    return "http_error", f"{type(exc).__name__}: {exc}"


@dataclass
class _Exchange:
    """One request and its response, read and closed."""

    response: httpx.Response
    # Phases of the request; a phase that did not happen (no TLS on http) is unset.
    timings: http_pb2.HttpTimings
    body: bytes
    truncated: bool
    tls: http_pb2.TlsInfo | None


async def _hop(client: httpx.AsyncClient, *, method: str, scheme: str, host: str, port: int, path: str,
               addr: IPAddress, options, deadline: float) -> _Exchange:
    """One request to `addr`, its body read up to the cap."""
    ip_host = f"[{addr}]" if addr.version == 6 else str(addr)
    headers = {"Host": _authority(host, port, scheme), "User-Agent": USER_AGENT, **dict(options.headers)}
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
                body = bytearray()
                truncated = False
                if method != "HEAD":
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > BODY_CAP:
                            truncated = True
                            break
                done = time.perf_counter()
                tls = _tls(response.extensions.get("network_stream"))
            finally:
                await response.aclose()
    except TimeoutError as exc:
        raise ProbeError("timeout", f"{where}: timed out in {timeline.phase()} after {ms(time.perf_counter() - started)} ms",
                         http_pb2.HttpResult(address=str(addr), phase=timeline.phase())) from exc
    except httpx.TimeoutException as exc:
        raise ProbeError("timeout", f"{where}: timed out in {timeline.phase()} ({type(exc).__name__})",
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
    return _Exchange(response, timings, bytes(body[:BODY_CAP]), truncated, tls)


async def probe(request: ProbeRequest) -> ProbeResult:
    options = request.options
    method = (options.method or "GET").upper()
    follow = options.follow_redirects if options.HasField("follow_redirects") else True
    scheme, host, port, path = _url(request.target, options)
    deadline = time.perf_counter() + budget(request)
    chain: list[http_pb2.HttpRedirect] = []
    current = request
    # No keep-alive: each hop of a redirect chain makes its own connection, so its timings are whole.
    context = ssl_context(options.http2, not options.insecure_tls)
    async with httpx.AsyncClient(verify=context, http2=options.http2, follow_redirects=False, trust_env=False,
                                 limits=httpx.Limits(max_keepalive_connections=0)) as client:
        # The clock starts here: building the shared SSL context on an agent's first check is not the target's time.
        started = time.perf_counter()
        for _hop_number in range(MAX_REDIRECTS + 1):
            hop_started = time.perf_counter()
            url = f"{scheme}://{_authority(host, port, scheme)}{path}"
            try:
                addr = (await resolve(current, port=port))[0]
                resolved = time.perf_counter()
                exchange = await _hop(
                    client, method=method, scheme=scheme, host=host, port=port, path=path, addr=addr,
                    options=options, deadline=deadline)
            except ProbeError as exc:
                partial = exc.partial(http_pb2.HttpResult)
                partial.url = url
                partial.redirects.extend(chain)
                exc.data = partial
                raise
            response = exchange.response
            timings = exchange.timings
            timings.dns_ms = ms(resolved - hop_started)
            timings.total_ms = ms(time.perf_counter() - hop_started)
            location = response.headers.get("location")
            if not (follow and response.is_redirect and location):
                break
            chain.append(http_pb2.HttpRedirect(url=url, address=str(addr), status_code=response.status_code,
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
            if response.status_code in (301, 302, 303) and method != "HEAD":
                method = "GET"
        else:
            raise ProbeError("too_many_redirects", f"more than {MAX_REDIRECTS} redirects",
                             http_pb2.HttpResult(redirects=chain))
    text = _text(exchange.body, response.charset_encoding)
    data = http_pb2.HttpResult(
        url=url, address=str(addr), ip_version=addr.version, method=method, status_code=response.status_code,
        reason=response.reason_phrase, http_version=response.http_version, headers=dict(response.headers),
        body=text, body_size=len(exchange.body), body_truncated=exchange.truncated, redirects=chain,
        timings=timings, total_ms=ms(time.perf_counter() - started), tls=exchange.tls)
    expected = list(options.expected_status)
    if not (response.status_code in expected if expected else 200 <= response.status_code < 400):
        wanted = ", ".join(map(str, expected)) if expected else "200-399"
        return ProbeResult(False, data, f"status {response.status_code}, expected {wanted}", "unexpected_status")
    if options.body_regexp:
        try:
            matched = re.search(options.body_regexp, text)
        except re.error as exc:
            raise ProbeError("bad_options", f"body_regexp: {exc}", data) from exc
        if not matched:
            where = f"the first {BODY_CAP} bytes of the body" if exchange.truncated else "the body"
            return ProbeResult(False, data, f"{where} does not match {options.body_regexp!r}", "body_mismatch")
    return ProbeResult(True, data)
