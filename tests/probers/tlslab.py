"""Certificates with known truth (made here with `cryptography`) and TLS servers on loopback.

A local CA signs a leaf valid for a known time (20 days and 1 hour from now, so its
whole days left is exactly 20), an expired leaf (expired 2 days and 1 hour ago: -3
whole days left), a self-signed certificate (RSA 2048, to test another key type) and an
intermediate chain (CA -> intermediate -> leaf). Servers: a TLS server that answers with a
small HTTP response, and a STARTTLS server speaking SMTP, IMAP, POP3 or FTP up to the
upgrade (and, with `refuse`, refusing it).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SANS = [x509.DNSName("www.t.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1"))]


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path
    # The PEM chain the server sends (leaf first), when it sends more than the leaf.
    chain: Path


@dataclass(frozen=True)
class Lab:
    ca: Path
    valid: Pair
    expired: Pair
    self_signed: Pair
    # Signed by an intermediate that the server sends along.
    chained: Pair
    # not_after of `valid`, to compare days_left with.
    valid_not_after: datetime.datetime


def _name(cn: str, org: str = "Hostcheck TLS Lab") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key, *extra: x509.Certificate) -> Pair:
    cert_path, key_path, chain_path = directory / f"{stem}.pem", directory / f"{stem}.key", directory / f"{stem}-chain.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    chain_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, *extra)))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Pair(cert_path, key_path, chain_path)


def _cert(subject: x509.Name, issuer: x509.Name, public_key, signing_key, *, not_before: datetime.datetime,
          not_after: datetime.datetime, ca: bool, serial: int, issuer_key=None) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(serial).not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   (issuer_key or signing_key).public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    else:
        builder = (builder.add_extension(x509.SubjectAlternativeName(SANS), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(signing_key, hashes.SHA256())


def make_lab(directory: Path) -> Lab:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    day, hour = datetime.timedelta(days=1), datetime.timedelta(hours=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Hostcheck TLS Lab CA")
    ca = _cert(ca_name, ca_name, ca_key.public_key(), ca_key, not_before=now - day, not_after=now + 60 * day,
               ca=True, serial=1)
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(cn: str, not_before, not_after, serial: int, *, issuer=ca_name, issuer_key=ca_key) -> tuple:
        key = ec.generate_private_key(ec.SECP256R1())
        return _cert(_name(cn), issuer, key.public_key(), issuer_key, not_before=not_before, not_after=not_after,
                     ca=False, serial=serial), key

    valid_not_after = now + 20 * day + hour
    valid, valid_key = leaf("www.t.test", now - day, valid_not_after, 0x1001)
    expired, expired_key = leaf("expired.t.test", now - 30 * day, now - 2 * day - hour, 0x1002)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    self_name = _name("self.t.test", "Self Signed")
    self_signed = _cert(self_name, self_name, rsa_key.public_key(), rsa_key, not_before=now - day,
                        not_after=now + 10 * day + hour, ca=False, serial=0x1003)
    inter_key = ec.generate_private_key(ec.SECP384R1())
    inter_name = _name("Hostcheck TLS Lab Intermediate")
    inter = _cert(inter_name, ca_name, inter_key.public_key(), ca_key, not_before=now - day, not_after=now + 40 * day,
                  ca=True, serial=0x2000, issuer_key=ca_key)
    chained, chained_key = leaf("www.t.test", now - day, now + 5 * day + hour, 0x1004, issuer=inter_name,
                                issuer_key=inter_key)
    return Lab(ca=directory / "ca.pem", valid=_write(directory, "valid", valid, valid_key),
               expired=_write(directory, "expired", expired, expired_key),
               self_signed=_write(directory, "self", self_signed, rsa_key),
               chained=_write(directory, "chained", chained, chained_key, inter),
               valid_not_after=valid_not_after)


def server_context(pair: Pair, *, alpn: tuple[str, ...] = ("h2", "http/1.1")) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pair.chain, pair.key)
    context.set_alpn_protocols(list(alpn))
    return context


# ---------------------------------------------------------------------------------------------- servers


class TlsServer:
    """TLS on 127.0.0.1 at a free port; answers any request with a short HTTP/1.1 response."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\ntls")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def start(self) -> TlsServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context, backlog=128)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


# protocol -> (greeting, [(expected command prefix, reply)], the go-ahead's command prefix, go-ahead, refusal)
_DIALOGUES = {
    "smtp": (b"220 mail.t.test ESMTP ready\r\n", [(b"EHLO", b"250-mail.t.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")],
             b"STARTTLS", b"220 2.0.0 go ahead\r\n", b"454 4.7.0 TLS not available\r\n"),
    "imap": (b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n", [], b"a1 STARTTLS",
             b"a1 OK begin TLS now\r\n", b"a1 BAD no\r\n"),
    "pop3": (b"+OK POP3 ready\r\n", [], b"STLS", b"+OK begin TLS\r\n", b"-ERR no\r\n"),
    "ftp": (b"220-welcome\r\n220 FTP ready\r\n", [], b"AUTH TLS", b"234 AUTH TLS ok\r\n", b"502 no\r\n"),
}


class StartTlsServer:
    """A mail/FTP-like server on 127.0.0.1: greets, answers the protocol's STARTTLS, then speaks TLS.

    After the handshake it sends `banner` (for tcp's expect) and echoes what it receives.
    """

    def __init__(self, protocol: str, context: ssl.SSLContext, *, refuse: bool = False,
                 banner: bytes = b"secure hello\r\n") -> None:
        self.protocol, self.context, self.refuse, self.banner = protocol, context, refuse, banner
        self.port = 0
        self._server: asyncio.Server | None = None
        # Commands received in plain text, in order.
        self.commands: list[bytes] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        greeting, steps, command, go_ahead, refusal = _DIALOGUES[self.protocol]
        try:
            writer.write(greeting)
            for prefix, reply in steps:
                line = await reader.readline()
                self.commands.append(line)
                assert line.upper().startswith(prefix.upper()), line
                writer.write(reply)
            line = await reader.readline()
            self.commands.append(line)
            if self.refuse or not line.upper().startswith(command.upper()):
                writer.write(refusal)
                await writer.drain()
                return
            writer.write(go_ahead)
            await writer.drain()
            await writer.start_tls(self.context)
            writer.write(self.banner)
            await writer.drain()
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError, AssertionError):
            pass
        finally:
            writer.close()

    async def start(self) -> StartTlsServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=128)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
