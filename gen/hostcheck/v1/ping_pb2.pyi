from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PingOptions(_message.Message):
    __slots__ = ("count", "interval_ms", "size", "protocol", "port")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    count: int
    interval_ms: int
    size: int
    protocol: str
    port: int
    def __init__(self, count: _Optional[int] = ..., interval_ms: _Optional[int] = ..., size: _Optional[int] = ..., protocol: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class PingResult(_message.Message):
    __slots__ = ("address", "ip_version", "size", "socket", "packets_sent", "packets_received", "packet_loss", "duplicates", "rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "rtt_stddev_ms", "rtts_ms", "ttl", "packets", "protocol", "port", "refused")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SOCKET_FIELD_NUMBER: _ClassVar[int]
    PACKETS_SENT_FIELD_NUMBER: _ClassVar[int]
    PACKETS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    PACKET_LOSS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    RTT_MIN_MS_FIELD_NUMBER: _ClassVar[int]
    RTT_AVG_MS_FIELD_NUMBER: _ClassVar[int]
    RTT_MAX_MS_FIELD_NUMBER: _ClassVar[int]
    RTT_STDDEV_MS_FIELD_NUMBER: _ClassVar[int]
    RTTS_MS_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    address: str
    ip_version: int
    size: int
    socket: str
    packets_sent: int
    packets_received: int
    packet_loss: float
    duplicates: int
    rtt_min_ms: float
    rtt_avg_ms: float
    rtt_max_ms: float
    rtt_stddev_ms: float
    rtts_ms: _containers.RepeatedScalarFieldContainer[float]
    ttl: int
    packets: _containers.RepeatedCompositeFieldContainer[PingPacket]
    protocol: str
    port: int
    refused: int
    def __init__(self, address: _Optional[str] = ..., ip_version: _Optional[int] = ..., size: _Optional[int] = ..., socket: _Optional[str] = ..., packets_sent: _Optional[int] = ..., packets_received: _Optional[int] = ..., packet_loss: _Optional[float] = ..., duplicates: _Optional[int] = ..., rtt_min_ms: _Optional[float] = ..., rtt_avg_ms: _Optional[float] = ..., rtt_max_ms: _Optional[float] = ..., rtt_stddev_ms: _Optional[float] = ..., rtts_ms: _Optional[_Iterable[float]] = ..., ttl: _Optional[int] = ..., packets: _Optional[_Iterable[_Union[PingPacket, _Mapping]]] = ..., protocol: _Optional[str] = ..., port: _Optional[int] = ..., refused: _Optional[int] = ...) -> None: ...

class PingPacket(_message.Message):
    __slots__ = ("seq", "rtt_ms", "ttl", "refused")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    rtt_ms: float
    ttl: int
    refused: bool
    def __init__(self, seq: _Optional[int] = ..., rtt_ms: _Optional[float] = ..., ttl: _Optional[int] = ..., refused: _Optional[bool] = ...) -> None: ...
