"""A minimal HTTP/1.1 keep-alive client for load generation (much less CPU per request than httpx).

It drives blackbox_exporter's /probe and Envoy's REST routes, so the client is not
what limits the peer or adds to the gateway's latency.
"""

from __future__ import annotations

import asyncio


class HttpError(RuntimeError):
    pass


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> None:
        if self.writer is None:
            await self._open()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))

    async def _head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        return status, headers

    async def _chunks(self):
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return
            data = await self.reader.readexactly(size + 2)
            yield data[:-2]

    async def request(self, method: str, path: str, body: bytes | None = None,
                      headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One request; the whole body."""
        try:
            await self._send(method, path, body, headers or {})
            status, head = await self._head()
            if head.get("transfer-encoding", "").lower() == "chunked":
                data = b"".join([c async for c in self._chunks()])
            else:
                data = await self.reader.readexactly(int(head.get("content-length", "0")))
            if head.get("connection", "").lower() == "close":
                self.close()
            return status, data
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self.close()
            raise HttpError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def stream_lines(self, path: str, *, until) -> list[bytes]:
        """GETs a streamed (chunked, newline-delimited) response; stops at the first line `until` accepts.

        The connection is closed afterwards (the stream may still be open on the server).
        """
        try:
            await self._send("GET", path, None, {})
            status, head = await self._head()
            if status != 200:
                raise HttpError(f"GET {path}: HTTP {status}")
            lines, buf = [], b""
            async for chunk in self._chunks():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        lines.append(line)
                        if until(line):
                            return lines
            return lines
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise HttpError(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            self.close()
