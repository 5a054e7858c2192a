"""Certificates parsed with `cryptography` (see _certs.py): loaded only when an agent first describes one.

Importing cryptography costs an agent ~9 MB of RSS and 60-250 ms of CPU (its Rust bindings and their
OpenSSL), and the first parse ~1 MB and a few ms more (the OID tables, the key types). An agent that
never meets TLS never loads this module; one that does loads it through `_certs.load()`, which the
probers call before a check that will describe certificates starts its clock (issue 17).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from hostcheck.agent.probers._certs import MAX_SANS, days_left
from hostcheck.v1 import http_pb2

_SHORT_NAMES = {NameOID.COMMON_NAME: "CN", NameOID.ORGANIZATION_NAME: "O", NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
                NameOID.COUNTRY_NAME: "C", NameOID.LOCALITY_NAME: "L", NameOID.STATE_OR_PROVINCE_NAME: "ST",
                NameOID.EMAIL_ADDRESS: "emailAddress", NameOID.DOMAIN_COMPONENT: "DC",
                NameOID.SERIAL_NUMBER: "serialNumber"}

# A self-signed P-256 certificate (O=hostcheck, CN=warm; SANs: DNS warm, IP 127.0.0.1; CA:FALSE), parsed once
# by `warm()`: what a first parse loads is then loaded. Parsing only: generating a key and signing, as
# the warm-up did before, loaded OpenSSL's key generation too (6.6 MB of RSS no check ever uses).
_WARM_DER = base64.b64decode(
    "MIIBXDCCAQKgAwIBAgIBATAKBggqhkjOPQQDAjAjMRIwEAYDVQQKDAlob3N0Y2hlY2sxDTALBgNVBAMMBHdhcm0wHhcNMjYwMTAx"
    "MDAwMDAwWhcNMjYwMTAxMDAwMDAwWjAjMRIwEAYDVQQKDAlob3N0Y2hlY2sxDTALBgNVBAMMBHdhcm0wWTATBgcqhkjOPQIBBggq"
    "hkjOPQMBBwNCAAQIWRU8N/dx2HjpJKk2SfbVLX9fUKtrujEf5u4FY5g1+DRzqHk3hIgI5kIxJGwKHiSMY5gcEGkIRb1+4XfBzW0K"
    "oycwJTAVBgNVHREEDjAMggR3YXJthwR/AAABMAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0EAwIDSAAwRQIgCYwBaOoj2FVxxVelP5ha"
    "7cHHHJ8edBrHi9fz/Ii/3WsCIQDXtLIvuHLkty+ZP7MPGAG/Ep60qwGq2ntfWPXHeu3vyQ==")


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


def warm() -> None:
    """Parses the embedded certificate (~3 ms the first time, of which none is left for a check's parse)."""
    certificate(_WARM_DER, now=0.0)
