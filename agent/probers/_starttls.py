"""STARTTLS: the plain-text dialogue that turns a mail or file-transfer connection into a TLS one.

For the tcp (`starttls`) and tls (`starttls`) probers: the server's greeting, the
protocol's upgrade command and its go-ahead, as openssl s_client -starttls does:

- smtp: 220 greeting, EHLO, 250, STARTTLS, 220 (RFC 3207)
- imap: `* OK` greeting, `a1 STARTTLS`, `a1 OK` (RFC 9051)
- pop3: `+OK` greeting, STLS, `+OK` (RFC 2595)
- ftp: 220 greeting, AUTH TLS, 234 (RFC 4217)

After it the caller starts TLS on the same connection (`StreamWriter.start_tls`).
"""

from __future__ import annotations

import asyncio

PROTOCOLS = ("smtp", "imap", "pop3", "ftp")
# A greeting or reply longer than this is not one of these protocols.
_MAX_LINE = 8 * 1024
_MAX_LINES = 100


class StartTlsError(Exception):
    """The server did not agree to STARTTLS; the message quotes what it said."""


async def _line(reader: asyncio.StreamReader) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raise StartTlsError(f"connection closed by the server after {exc.partial[:200]!r}") from exc
    except asyncio.LimitOverrunError as exc:
        raise StartTlsError("a line longer than the reader's limit") from exc
    if len(raw) > _MAX_LINE:
        raise StartTlsError("a line longer than 8 KiB")
    return raw.decode("utf-8", "replace").rstrip("\r\n")


async def _reply(reader: asyncio.StreamReader) -> tuple[str, str]:
    """An SMTP/FTP reply, multi-line ("250-...") included: (its code, its last line)."""
    for _ in range(_MAX_LINES):
        line = await _line(reader)
        if len(line) >= 3 and line[:3].isdigit() and line[3:4] != "-":
            return line[:3], line
    raise StartTlsError(f"more than {_MAX_LINES} lines in one reply")


async def _expect_code(reader: asyncio.StreamReader, code: str, step: str) -> None:
    got, line = await _reply(reader)
    if got != code:
        raise StartTlsError(f"{step}: expected {code}, the server said {line[:200]!r}")


async def _expect_prefix(reader: asyncio.StreamReader, prefix: str, step: str, *, skip: str = "") -> None:
    for _ in range(_MAX_LINES):
        line = await _line(reader)
        if skip and line.startswith(skip):
            continue  # IMAP's untagged lines before the tagged reply
        if line.upper().startswith(prefix.upper()):
            return
        raise StartTlsError(f"{step}: expected {prefix!r}, the server said {line[:200]!r}")
    raise StartTlsError(f"{step}: more than {_MAX_LINES} lines")


async def negotiate(protocol: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The dialogue up to the server's go-ahead; StartTlsError when the server refuses or says nonsense."""
    if protocol == "smtp":
        await _expect_code(reader, "220", "greeting")
        writer.write(b"EHLO hostcheck.invalid\r\n")
        await _expect_code(reader, "250", "EHLO")
        writer.write(b"STARTTLS\r\n")
        await _expect_code(reader, "220", "STARTTLS")
    elif protocol == "ftp":
        await _expect_code(reader, "220", "greeting")
        writer.write(b"AUTH TLS\r\n")
        await _expect_code(reader, "234", "AUTH TLS")
    elif protocol == "imap":
        await _expect_prefix(reader, "* OK", "greeting")
        writer.write(b"a1 STARTTLS\r\n")
        await _expect_prefix(reader, "a1 OK", "STARTTLS", skip="* ")
    elif protocol == "pop3":
        await _expect_prefix(reader, "+OK", "greeting")
        writer.write(b"STLS\r\n")
        await _expect_prefix(reader, "+OK", "STLS")
    else:
        raise ValueError(f"unknown STARTTLS protocol {protocol!r}")
    await writer.drain()
