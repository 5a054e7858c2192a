from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class UdpOptions(_message.Message):
    __slots__ = ("port", "payload", "payload_hex")
    PORT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_HEX_FIELD_NUMBER: _ClassVar[int]
    port: int
    payload: str
    payload_hex: str
    def __init__(self, port: _Optional[int] = ..., payload: _Optional[str] = ..., payload_hex: _Optional[str] = ...) -> None: ...

class UdpResult(_message.Message):
    __slots__ = ("address", "port", "ip_version", "payload_size", "dns_ms", "state", "rtt_ms", "reply_hex", "reply_text", "reply_size", "reply_truncated")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    DNS_MS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    REPLY_HEX_FIELD_NUMBER: _ClassVar[int]
    REPLY_TEXT_FIELD_NUMBER: _ClassVar[int]
    REPLY_SIZE_FIELD_NUMBER: _ClassVar[int]
    REPLY_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    address: str
    port: int
    ip_version: int
    payload_size: int
    dns_ms: float
    state: str
    rtt_ms: float
    reply_hex: str
    reply_text: str
    reply_size: int
    reply_truncated: bool
    def __init__(self, address: _Optional[str] = ..., port: _Optional[int] = ..., ip_version: _Optional[int] = ..., payload_size: _Optional[int] = ..., dns_ms: _Optional[float] = ..., state: _Optional[str] = ..., rtt_ms: _Optional[float] = ..., reply_hex: _Optional[str] = ..., reply_text: _Optional[str] = ..., reply_size: _Optional[int] = ..., reply_truncated: _Optional[bool] = ...) -> None: ...
