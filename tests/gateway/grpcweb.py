"""gRPC-Web by hand (application/grpc-web+proto): what a browser client puts on the wire.

A body is a series of frames: a 1-byte flag (0x00 data, 0x80 trailers), a 4-byte
big-endian length, then the payload; the trailers frame holds `name:value` lines.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

CONTENT_TYPE = "application/grpc-web+proto"
HEADERS = {"content-type": CONTENT_TYPE, "x-grpc-web": "1", "x-user-agent": "grpc-web-javascript/0.1",
           "accept": CONTENT_TYPE}
TRAILERS_FLAG = 0x80


def frame(payload: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


def parse_trailers(payload: bytes) -> dict[str, str]:
    trailers = {}
    for line in payload.decode().split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            trailers[name.strip().lower()] = value.strip()
    return trailers


@dataclass
class Reply:
    """Messages in order, then the status from the trailers frame (or, trailers-only, the headers)."""

    headers: httpx.Headers
    messages: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return int(self.trailers.get("grpc-status", self.headers.get("grpc-status", "-1")))

    @property
    def message(self) -> str:
        return self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))

    @property
    def details_bin(self) -> str:
        return self.trailers.get("grpc-status-details-bin", self.headers.get("grpc-status-details-bin", ""))


def decode_text(body: bytes) -> bytes:
    """application/grpc-web-text: base64, possibly several padded pieces one after another."""
    return b"".join(base64.b64decode(piece) for piece in re.findall(rb"[^=]+=*", body))


async def frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """(flag, payload) for each whole frame, as soon as its last byte arrives."""
    buf = b""
    async for chunk in chunks:
        buf += chunk
        while len(buf) >= 5:
            flag, length = struct.unpack(">BI", buf[:5])
            if len(buf) < 5 + length:
                break
            yield flag, buf[5:5 + length]
            buf = buf[5 + length:]
    assert buf == b"", f"{len(buf)} bytes of a partial frame at the end of the body"


async def call(client: httpx.AsyncClient, method: str, request: bytes, *, headers: dict | None = None) -> Reply:
    reply = await client.post(f"/{method}", content=frame(request), headers={**HEADERS, **(headers or {})})
    assert reply.status_code == 200, reply.text
    out = Reply(reply.headers)

    async def body():
        yield reply.content
    async for flag, payload in frames(body()):
        if flag & TRAILERS_FLAG:
            out.trailers = parse_trailers(payload)
        else:
            out.messages.append(payload)
    return out
