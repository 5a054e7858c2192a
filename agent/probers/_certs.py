"""Certificates and TLS sessions as the http, tcp and tls probers report them, parsed with `cryptography`.

The ssl module parses a peer certificate only when it verified it (`getpeercert()` is
empty under CERT_NONE), and names fields its own way. Here every certificate the
server sent is parsed from its DER bytes with cryptography, verified or not, so
`insecure_tls` reports subject, issuer, SANs, validity and key of exactly the
expired and self-signed certificates it exists to inspect. Names are written as
OpenSSL's `-nameopt oneline`-like "O=Org, CN=name" in the certificate's order.

cryptography is loaded at the first certificate an agent describes (_x509.py), not at its start:
it is ~9 MB of an idle agent's RSS (plus 6.6 MB the old warm-up's key generation left), and many
agents' checks never meet TLS (issue 17). The probers await `ready()` before a check that will
describe certificates starts its clock (https, tls, tcp with STARTTLS), so the timings a check
reports never include the import.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import os
import ssl
from functools import lru_cache

from hostcheck.v1 import http_pb2

_DAY = 86400.0
# Subject alternative names reported per certificate.
MAX_SANS = 100
# Whether `load()` has run (the parser imported and warmed).
_loaded = False


def load() -> bool:
    """Loads the certificate parser (cryptography) and parses a certificate once, unless done before:
    True when it did it now (~50-65 ms of CPU here, more under load). See `ready()`."""
    global _loaded
    if _loaded:
        return False
    from hostcheck.agent.probers import _x509

    _x509.warm()
    _loaded = True
    return True


async def ready() -> bool:
    """`load()`, awaited before a check that will describe certificates starts its clock, on a thread:
    the import is Python code for the most part, so the event loop (other checks' timings) gets the
    interpreter back at every switch interval (5 ms) instead of stalling for the whole import.
    True when it loaded the parser now."""
    if _loaded:
        return False
    return await asyncio.to_thread(load)


def built(factory, *args) -> bool:
    """Calls an lru_cache'd context factory; True when it built a context now (a cache miss)."""
    misses = factory.cache_info().misses
    factory(*args)
    return bool(factory.cache_info().misses != misses)


def days_left(not_after: datetime.datetime, now: float) -> int:
    """Whole days until `not_after`: floor((not_after - now) / 1 day); -1 on the day after expiry."""
    return math.floor((not_after.timestamp() - now) / _DAY)


def certificate(der: bytes, *, now: float) -> http_pb2.Certificate:
    """One DER certificate; one that does not parse is reported by its fingerprint alone (loads the parser
    if no `load()` did: a certificate met where no prober expected one, e.g. after a redirect to https)."""
    from hostcheck.agent.probers import _x509

    return _x509.certificate(der, now=now)


def peer_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> list[bytes]:
    """The DER certificates the peer sent, leaf first, whether or not they were verified.

    Python 3.13 has `get_unverified_chain()`; 3.10-3.12 have it on the private `_sslobj` (returning
    `_ssl.Certificate`s). Where neither exists, the leaf alone.
    """
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    chain = getter() if getter is not None else None
    if chain:
        return [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                for c in chain]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def chain(ssl_object: ssl.SSLObject | ssl.SSLSocket, *, now: float) -> list[http_pb2.Certificate]:
    return [certificate(der, now=now) for der in peer_chain(ssl_object)]


def tls_info(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, *, now: float) -> http_pb2.TlsInfo | None:
    """The session of a connection: protocol, cipher, ALPN, whether verified, the chain parsed."""
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    certs = chain(ssl_object, now=now)
    out = http_pb2.TlsInfo(version=ssl_object.version() or "", cipher=cipher[0] if cipher else "",
                           alpn=ssl_object.selected_alpn_protocol() or "",
                           verified=ssl_object.context.verify_mode == ssl.CERT_REQUIRED, chain=certs)
    if certs:
        out.certificate.CopyFrom(certs[0])
    return out


def trust_default_roots(context: ssl.SSLContext) -> None:
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


@lru_cache(maxsize=16)
def client_context(verify: bool, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """A shared client context (building one costs ~1-40 ms of CPU) for the tcp and tls probers."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        trust_default_roots(context)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context
