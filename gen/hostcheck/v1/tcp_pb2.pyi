from hostcheck.v1 import http_pb2 as _http_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TcpOptions(_message.Message):
    __slots__ = ("port", "send", "expect", "starttls", "insecure_tls")
    PORT_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    EXPECT_FIELD_NUMBER: _ClassVar[int]
    STARTTLS_FIELD_NUMBER: _ClassVar[int]
    INSECURE_TLS_FIELD_NUMBER: _ClassVar[int]
    port: int
    send: str
    expect: str
    starttls: str
    insecure_tls: bool
    def __init__(self, port: _Optional[int] = ..., send: _Optional[str] = ..., expect: _Optional[str] = ..., starttls: _Optional[str] = ..., insecure_tls: _Optional[bool] = ...) -> None: ...

class TcpResult(_message.Message):
    __slots__ = ("address", "port", "ip_version", "dns_ms", "connect_ms", "starttls_ms", "tls_ms", "tls", "response_ms", "received", "phase")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    DNS_MS_FIELD_NUMBER: _ClassVar[int]
    CONNECT_MS_FIELD_NUMBER: _ClassVar[int]
    STARTTLS_MS_FIELD_NUMBER: _ClassVar[int]
    TLS_MS_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_MS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    address: str
    port: int
    ip_version: int
    dns_ms: float
    connect_ms: float
    starttls_ms: float
    tls_ms: float
    tls: _http_pb2.TlsInfo
    response_ms: float
    received: str
    phase: str
    def __init__(self, address: _Optional[str] = ..., port: _Optional[int] = ..., ip_version: _Optional[int] = ..., dns_ms: _Optional[float] = ..., connect_ms: _Optional[float] = ..., starttls_ms: _Optional[float] = ..., tls_ms: _Optional[float] = ..., tls: _Optional[_Union[_http_pb2.TlsInfo, _Mapping]] = ..., response_ms: _Optional[float] = ..., received: _Optional[str] = ..., phase: _Optional[str] = ...) -> None: ...
