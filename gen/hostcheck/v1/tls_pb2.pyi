from hostcheck.v1 import http_pb2 as _http_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TlsOptions(_message.Message):
    __slots__ = ("port", "server_name", "alpn", "starttls", "insecure", "min_days_left")
    PORT_FIELD_NUMBER: _ClassVar[int]
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    ALPN_FIELD_NUMBER: _ClassVar[int]
    STARTTLS_FIELD_NUMBER: _ClassVar[int]
    INSECURE_FIELD_NUMBER: _ClassVar[int]
    MIN_DAYS_LEFT_FIELD_NUMBER: _ClassVar[int]
    port: int
    server_name: str
    alpn: _containers.RepeatedScalarFieldContainer[str]
    starttls: str
    insecure: bool
    min_days_left: int
    def __init__(self, port: _Optional[int] = ..., server_name: _Optional[str] = ..., alpn: _Optional[_Iterable[str]] = ..., starttls: _Optional[str] = ..., insecure: _Optional[bool] = ..., min_days_left: _Optional[int] = ...) -> None: ...

class TlsResult(_message.Message):
    __slots__ = ("address", "port", "ip_version", "server_name", "dns_ms", "connect_ms", "starttls_ms", "handshake_ms", "version", "cipher", "cipher_bits", "alpn", "verified", "verify_error", "chain", "days_left", "phase")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    DNS_MS_FIELD_NUMBER: _ClassVar[int]
    CONNECT_MS_FIELD_NUMBER: _ClassVar[int]
    STARTTLS_MS_FIELD_NUMBER: _ClassVar[int]
    HANDSHAKE_MS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CIPHER_FIELD_NUMBER: _ClassVar[int]
    CIPHER_BITS_FIELD_NUMBER: _ClassVar[int]
    ALPN_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    VERIFY_ERROR_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    DAYS_LEFT_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    address: str
    port: int
    ip_version: int
    server_name: str
    dns_ms: float
    connect_ms: float
    starttls_ms: float
    handshake_ms: float
    version: str
    cipher: str
    cipher_bits: int
    alpn: str
    verified: bool
    verify_error: str
    chain: _containers.RepeatedCompositeFieldContainer[_http_pb2.Certificate]
    days_left: int
    phase: str
    def __init__(self, address: _Optional[str] = ..., port: _Optional[int] = ..., ip_version: _Optional[int] = ..., server_name: _Optional[str] = ..., dns_ms: _Optional[float] = ..., connect_ms: _Optional[float] = ..., starttls_ms: _Optional[float] = ..., handshake_ms: _Optional[float] = ..., version: _Optional[str] = ..., cipher: _Optional[str] = ..., cipher_bits: _Optional[int] = ..., alpn: _Optional[str] = ..., verified: _Optional[bool] = ..., verify_error: _Optional[str] = ..., chain: _Optional[_Iterable[_Union[_http_pb2.Certificate, _Mapping]]] = ..., days_left: _Optional[int] = ..., phase: _Optional[str] = ...) -> None: ...
