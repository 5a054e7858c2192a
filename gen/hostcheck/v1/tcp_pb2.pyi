from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class TcpOptions(_message.Message):
    __slots__ = ("port",)
    PORT_FIELD_NUMBER: _ClassVar[int]
    port: int
    def __init__(self, port: _Optional[int] = ...) -> None: ...

class TcpResult(_message.Message):
    __slots__ = ("address", "port", "ip_version", "dns_ms", "connect_ms")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    DNS_MS_FIELD_NUMBER: _ClassVar[int]
    CONNECT_MS_FIELD_NUMBER: _ClassVar[int]
    address: str
    port: int
    ip_version: int
    dns_ms: float
    connect_ms: float
    def __init__(self, address: _Optional[str] = ..., port: _Optional[int] = ..., ip_version: _Optional[int] = ..., dns_ms: _Optional[float] = ..., connect_ms: _Optional[float] = ...) -> None: ...
