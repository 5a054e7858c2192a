"""http: one request (redirects followed as a chain), status, headers, timing and a capped body."""

from __future__ import annotations

import ssl
import time
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

import httpx

from agent.probers.base import ProbeError, ProbeRequest, ProbeResult, ms, resolve
from services.domain.targets import Target, TargetError, parse_target

BODY_CAP = 10 * 1024
MAX_REDIRECTS = 10


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # One shared context: building one per request costs ~40 ms of CPU.
    return ssl.create_default_context()


def _url(target: Target, options) -> tuple[str, str, int, str]:
    scheme = options.scheme or target.scheme or ("https" if (options.port or target.port) == 443 else "http")
    port = options.port or target.port or (443 if scheme == "https" else 80)
    path = options.path or target.path or "/"
    return scheme, target.host, port, path


async def probe(request: ProbeRequest) -> ProbeResult:
    options = request.options
    method = options.method or "GET"
    follow = options.follow_redirects if options.HasField("follow_redirects") else True
    scheme, host, port, path = _url(request.target, options)
    started = time.perf_counter()
    chain: list[dict] = []
    current = request
    async with httpx.AsyncClient(verify=_ssl_context(), http2=options.http2, follow_redirects=False,
                                 timeout=request.timeout) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            addrs = await resolve(current, port=port)
            addr = addrs[0]
            ip_host = f"[{addr}]" if addr.version == 6 else str(addr)
            url = f"{scheme}://{ip_host}:{port}{path}"
            headers = {"Host": host if port in (80, 443) else f"{host}:{port}",
                       "User-Agent": "hostcheck-agent/0.1", **dict(options.headers)}
            hop_started = time.perf_counter()
            remaining = request.timeout - (hop_started - started)
            if remaining <= 0:
                raise ProbeError("timeout", f"{method} {scheme}://{host}{path} timed out", {"redirects": chain})
            try:
                response = await client.request(
                    method, url, headers=headers, content=options.body.encode() if options.body else None,
                    extensions={"sni_hostname": host, "timeout": {"connect": remaining, "read": remaining,
                                                                  "write": remaining, "pool": remaining}})
            except httpx.TimeoutException as exc:
                raise ProbeError("timeout", f"{method} {scheme}://{host}:{port}{path} timed out",
                                 {"address": str(addr), "redirects": chain}) from exc
            except httpx.ConnectError as exc:
                text = str(exc)
                code = "tls_error" if "SSL" in text or "certificate" in text.lower() else (
                    "refused" if "refused" in text.lower() else "connect_error")
                raise ProbeError(code, f"{scheme}://{host}:{port}: {text}", {"address": str(addr)}) from exc
            except httpx.HTTPError as exc:
                raise ProbeError("http_error", f"{scheme}://{host}:{port}{path}: {exc}", {"address": str(addr)}) from exc
            elapsed = time.perf_counter() - hop_started
            location = response.headers.get("location")
            if follow and response.is_redirect and location:
                chain.append({"url": f"{scheme}://{host}:{port}{path}", "status_code": response.status_code,
                              "location": location, "duration_ms": ms(elapsed)})
                nxt = urljoin(f"{scheme}://{host}:{port}{path}", location)
                try:
                    parsed = parse_target(nxt)
                except TargetError as exc:
                    raise ProbeError("bad_redirect", f"redirect to {location!r}: {exc}", {"redirects": chain}) from exc
                parts = urlsplit(nxt)
                scheme, host = parts.scheme, parsed.host
                port = parsed.port or (443 if scheme == "https" else 80)
                path = parsed.path or "/"
                current = ProbeRequest(target=parsed, options=options, timeout=request.timeout,
                                       ip_version=request.ip_version, guard=request.guard)
                method = "GET" if response.status_code in (301, 302, 303) else method
                continue
            break
        else:
            raise ProbeError("too_many_redirects", f"more than {MAX_REDIRECTS} redirects", {"redirects": chain})
    body = response.content
    expected = list(options.expected_status)
    ok = response.status_code in expected if expected else 200 <= response.status_code < 400
    data = {
        "url": f"{scheme}://{host}:{port}{path}",
        "address": str(addr),
        "status_code": response.status_code,
        "http_version": response.http_version,
        "headers": dict(response.headers),
        "body": body[:BODY_CAP].decode("utf-8", "replace"),
        "body_size": len(body),
        "body_truncated": len(body) > BODY_CAP,
        "redirects": chain,
        "total_ms": ms(time.perf_counter() - started),
    }
    if not ok:
        return ProbeResult(False, data, f"status {response.status_code} not expected", "unexpected_status")
    if options.body_regexp:
        import re

        if not re.search(options.body_regexp, body.decode("utf-8", "replace")):
            return ProbeResult(False, data, "body does not match body_regexp", "body_mismatch")
    return ProbeResult(True, data)
