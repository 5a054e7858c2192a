"""Certificates and TLS sessions as the http, tcp and tls probers report them, parsed with `cryptography`.

The ssl module parses a peer certificate only when it verified it (`getpeercert()` is
empty under CERT_NONE), and names fields its own way. Here every certificate the
server sent is parsed from its DER bytes with cryptography, verified or not, so
`insecure_tls` reports subject, issuer, SANs, validity and key of exactly the
expired and self-signed certificates it exists to inspect. Names are written as
OpenSSL's `-nameopt oneline`-like "O=Org, CN=name" in the certificate's order.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import os
import ssl
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from hostcheck.v1 import http_pb2

_DAY = 86400.0
# Subject alternative names reported per certificate.
MAX_SANS = 100
_SHORT_NAMES = {NameOID.COMMON_NAME: "CN", NameOID.ORGANIZATION_NAME: "O", NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
                NameOID.COUNTRY_NAME: "C", NameOID.LOCALITY_NAME: "L", NameOID.STATE_OR_PROVINCE_NAME: "ST",
                NameOID.EMAIL_ADDRESS: "emailAddress", NameOID.DOMAIN_COMPONENT: "DC",
                NameOID.SERIAL_NUMBER: "serialNumber"}


def _name(name: x509.Name) -> str:
    return ", ".join(f"{_SHORT_NAMES.get(attr.oid, attr.oid.dotted_string)}={attr.value!s}"
                     for rdn in name.rdns for attr in rdn)


def _sans(cert: x509.Certificate) -> list[str]:
    """DNS names bare, addresses as "IP Address:..." (as the ssl module and OpenSSL write them)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out: list[str] = []
    names = list(ext)
    for general in names[:MAX_SANS]:
        if isinstance(general, x509.DNSName):
            out.append(general.value)
        elif isinstance(general, x509.IPAddress):
            out.append(f"IP Address:{_address(general.value)}")
        elif isinstance(general, x509.RFC822Name):
            out.append(f"email:{general.value}")
        elif isinstance(general, x509.UniformResourceIdentifier):
            out.append(f"URI:{general.value}")
    if len(names) > MAX_SANS:  # a CDN certificate may name hundreds; the result must fit 16 KiB of JSON
        out.append(f"... and {len(names) - MAX_SANS} more")
    return out


def _address(value: Any) -> str:
    """An address as OpenSSL prints it: IPv6 as eight upper-case hex groups, none compressed."""
    if value.version == 6:
        return ":".join(f"{int(group, 16):X}" for group in value.exploded.split(":"))
    return str(value)


def _key(cert: x509.Certificate) -> tuple[str, int]:
    try:
        key: Any = cert.public_key()
    except (ValueError, TypeError):  # a key type cryptography does not know
        return cert.public_key_algorithm_oid._name, 0
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, 0


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def days_left(not_after: datetime.datetime, now: float) -> int:
    """Whole days until `not_after`: floor((not_after - now) / 1 day); -1 on the day after expiry."""
    return math.floor((not_after.timestamp() - now) / _DAY)


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def certificate(der: bytes, *, now: float) -> http_pb2.Certificate:
    """One DER certificate; one that does not parse is reported by its fingerprint alone."""
    out = http_pb2.Certificate(sha256=hashlib.sha256(der).hexdigest())
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return out
    key_type, key_bits = _key(cert)
    not_after = cert.not_valid_after_utc
    out.MergeFrom(http_pb2.Certificate(
        subject=_name(cert.subject), issuer=_name(cert.issuer), sans=_sans(cert),
        serial=f"{cert.serial_number:X}", not_before=_rfc3339(cert.not_valid_before_utc),
        not_after=_rfc3339(not_after), days_left=days_left(not_after, now),
        key_type=key_type, key_bits=key_bits, signature_algorithm=cert.signature_algorithm_oid._name,
        is_ca=_is_ca(cert)))
    return out


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


def warm() -> None:
    """Loads what parsing a certificate loads (cryptography's bindings, the OID tables): ~15 ms the first time."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "warm")])
    moment = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(moment).not_valid_after(moment)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("warm")]), critical=False)
            .sign(key, hashes.SHA256()))
    from cryptography.hazmat.primitives.serialization import Encoding

    certificate(cert.public_bytes(Encoding.DER), now=moment.timestamp())
