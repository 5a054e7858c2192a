"""Real servers the probers are tested against: a test CA, an HTTP/1.1 + HTTP/2 server, dnsmasq.

Delays inside the servers simulate slow peers; they are never used to wait for
something in a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.events

# ---------------------------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path
    # A server certificate from a CA nobody trusts.
    rogue_cert: Path
    rogue_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _issue(directory: Path, name: str, ca: str, *, cn: str, sans: str) -> None:
    (directory / f"{name}.ext").write_text(
        f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/O=Hostcheck Tests/CN={cn}", cwd=directory)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-set_serial",
             "0x1234abcd", "-days", "20", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=directory)


def make_certs(directory: Path) -> Certs:
    """A test CA and a server certificate for www.t.test, 127.0.0.1 and ::1 valid 20 days; and a rogue pair."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is needed to make test certificates")
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                 f"{ca}.key", "-out", f"{ca}.pem", "-days", "30", "-subj", f"/CN=Hostcheck Test {ca}",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 cwd=directory)
    sans = "DNS:www.t.test,IP:127.0.0.1,IP:::1"
    _issue(directory, "server", "ca", cn="www.t.test", sans=sans)
    _issue(directory, "rogue", "rogue-ca", cn="www.t.test", sans=sans)
    return Certs(directory / "ca.pem", directory / "server.pem", directory / "server.key",
                 directory / "rogue.pem", directory / "rogue.key")


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


# ---------------------------------------------------------------------------------------------- HTTP


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    # Seconds the server waits before answering (a slow server).
    delay: float = 0.0
    # Never answer (a hung server).
    hang: bool = False


BIG_BODY = b"0123456789abcdef" * 4096  # 64 KiB


def route(method: str, target: str, body: bytes) -> Reply:
    """What the test server answers, for HTTP/1.1 and HTTP/2 alike."""
    parts = urlsplit(target)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    text = [("content-type", "text/plain; charset=utf-8")]
    match parts.path:
        case "/":
            return Reply(200, [*text, ("x-test", "yes")], b"hello from the test server\n")
        case "/echo":
            return Reply(200, text, f"{method} {target} {body.decode()}".encode())
        case "/redirect":
            return Reply(302, [("location", "/step")], b"")
        case "/step":
            return Reply(301, [("location", query.get("to", "/final"))], b"")
        case "/final":
            return Reply(200, text, b"final destination\n")
        case "/loop":
            return Reply(302, [("location", "/loop")], b"")
        case "/big":
            return Reply(200, [("content-type", "application/octet-stream")], BIG_BODY)
        case "/status":
            return Reply(int(query.get("code", "200")), text, b"status\n")
        case "/slow":
            return Reply(200, text, b"slow but there\n", delay=float(query.get("s", "0.3")))
        case "/hang":
            return Reply(200, text, b"", hang=True)
    return Reply(404, text, b"not found\n")


async def _answer(reply: Reply) -> None:
    """Waits as the route says: a while (slow) or forever (hung)."""
    if reply.hang:
        await asyncio.Event().wait()
    if reply.delay:
        await asyncio.sleep(reply.delay)


async def _serve_http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        reply = route(method, target, body)
        await _answer(reply)
        out = [f"HTTP/1.1 {reply.status} X", f"content-length: {len(reply.body)}",
               *(f"{k}: {v}" for k, v in reply.headers)]
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else reply.body))
        await writer.drain()


async def _serve_http2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    requests: dict[int, tuple[dict[str, str], bytearray]] = {}
    tasks: set[asyncio.Task] = set()

    async def respond(stream_id: int, headers: dict[str, str], body: bytes) -> None:
        reply = route(headers[":method"], headers[":path"], body)
        await _answer(reply)
        conn.send_headers(stream_id, [(":status", str(reply.status)), ("content-length", str(len(reply.body))),
                                      *reply.headers], end_stream=not reply.body)
        sent = 0
        while sent < len(reply.body):
            window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if window <= 0:
                writer.write(conn.data_to_send())
                await writer.drain()
                await flow.wait()
                flow.clear()
                continue
            chunk = reply.body[sent:sent + window]
            sent += len(chunk)
            conn.send_data(stream_id, chunk, end_stream=sent == len(reply.body))
            writer.write(conn.data_to_send())
        writer.write(conn.data_to_send())
        await writer.drain()

    flow = asyncio.Event()
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    headers = {str(k): str(v) for k, v in event.headers or ()}
                    requests[event.stream_id] = (headers, bytearray())
                elif isinstance(event, h2.events.DataReceived):
                    requests[event.stream_id][1].extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    headers, body = requests.pop(event.stream_id)
                    task = asyncio.create_task(respond(event.stream_id, headers, bytes(body)))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif isinstance(event, h2.events.WindowUpdated):
                    flow.set()
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return
            writer.write(conn.data_to_send())
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        for task in tasks:
            task.cancel()


class HttpServer:
    """HTTP/1.1 (and HTTP/2 when TLS negotiates h2) on loopback, v4 and v6."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.port = 0
        self._servers: list[asyncio.Server] = []
        self._conns: set[asyncio.Task] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                await _serve_http2(reader, writer)
            else:
                await _serve_http1(reader, writer)
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(task)
            writer.close()

    async def start(self) -> HttpServer:
        v4 = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls, backlog=512)
        self.port = v4.sockets[0].getsockname()[1]
        self._servers = [v4, await asyncio.start_server(self._handle, "::1", self.port, ssl=self.tls, backlog=512)]
        return self

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._conns):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()


# ---------------------------------------------------------------------------------------------- DNS


def _wire_name(name: str) -> str:
    return "".join(f"{len(label):02x}{label.encode().hex()}" for label in name.split(".")) + "00"


def _soa_rdata() -> str:
    return (_wire_name("ns1.t.test") + _wire_name("hostmaster.t.test")
            + "".join(f"{n:08x}" for n in (2026112801, 3600, 600, 86400, 300)))


# Records dnsmasq has no option for, given in zone-file form and served as raw rdata (--dns-rr).
RAW_RECORDS = (
    ("t.test", "DNSKEY", "257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="),
    ("t.test", "DS", "12345 13 2 3E3C1A4C2F8E2F1E0B6D4F7E9A8B7C6D5E4F3A2B1C0D9E8F7A6B5C4D3E2F1A0B"),
    ("t.test", "HTTPS", '1 . alpn="h2,h3" port=443'),
    ("_svc.t.test", "SVCB", "1 svc.t.test. port=8443"),
    ("_443._tcp.t.test", "TLSA", "3 1 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6"),
    ("www.t.test", "SSHFP", "4 2 123456789ABCDEF67890123456789ABCDEF67890123456789ABCDEF123456789"),
    ("t.test", "NAPTR", '100 10 "S" "SIP+D2U" "" _sip._udp.t.test.'),
)


def _raw_records() -> list[str]:
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    out = []
    for name, kind, text in RAW_RECORDS:
        rdtype = dns.rdatatype.from_text(kind)
        wire = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text).to_wire()
        out.append(f"--dns-rr={name},{int(rdtype)},{wire.hex()}")
    return out


def dnsmasq_args(*, listen: str = "127.0.0.1", port: int = 53, extra: tuple[str, ...] = ()) -> list[str]:
    """dnsmasq in the foreground serving the zone t.test with every record type we query; other names NXDOMAIN."""
    return [
        "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
        f"--listen-address={listen}", "--bind-interfaces", f"--port={port}", "--user=root", "--local-ttl=300",
        "--log-facility=-", "--log-queries", "--local=/t.test/",
        "--host-record=www.t.test,127.0.0.10,::10",
        "--host-record=rebind.t.test,127.0.0.1",
        "--cname=alias.t.test,www.t.test",
        "--mx-host=t.test,mail.t.test,10",
        "--txt-record=t.test,v=spf1 -all",
        "--txt-record=multi.t.test,part one,part two",
        "--host-record=office.t.test,10.1.2.3",
        "--srv-host=_http._tcp.t.test,www.t.test,80,1,5",
        "--caa-record=t.test,0,issue,ca.t.test",
        "--ptr-record=20.0.0.127.in-addr.arpa,ptr.t.test",
        f"--dns-rr=t.test,2,{_wire_name('ns1.t.test')}",
        f"--dns-rr=t.test,6,{_soa_rdata()}",
        *_raw_records(),
        *extra,
    ]
