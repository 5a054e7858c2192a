from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MtrOptions(_message.Message):
    __slots__ = ("count", "interval_ms", "max_hops", "protocol", "port", "resolve_names")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_HOPS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_NAMES_FIELD_NUMBER: _ClassVar[int]
    count: int
    interval_ms: int
    max_hops: int
    protocol: str
    port: int
    resolve_names: bool
    def __init__(self, count: _Optional[int] = ..., interval_ms: _Optional[int] = ..., max_hops: _Optional[int] = ..., protocol: _Optional[str] = ..., port: _Optional[int] = ..., resolve_names: _Optional[bool] = ...) -> None: ...

class MtrResult(_message.Message):
    __slots__ = ("address", "ip_version", "protocol", "port", "count", "destination_reached", "hops")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_REACHED_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    address: str
    ip_version: int
    protocol: str
    port: int
    count: int
    destination_reached: bool
    hops: _containers.RepeatedCompositeFieldContainer[MtrHop]
    def __init__(self, address: _Optional[str] = ..., ip_version: _Optional[int] = ..., protocol: _Optional[str] = ..., port: _Optional[int] = ..., count: _Optional[int] = ..., destination_reached: _Optional[bool] = ..., hops: _Optional[_Iterable[_Union[MtrHop, _Mapping]]] = ...) -> None: ...

class MtrHop(_message.Message):
    __slots__ = ("hop", "address", "name", "addresses", "sent", "received", "loss_percent", "last_ms", "avg_ms", "best_ms", "worst_ms", "stddev_ms", "jitter_avg_ms", "jitter_max_ms", "unreachable")
    HOP_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    LOSS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    LAST_MS_FIELD_NUMBER: _ClassVar[int]
    AVG_MS_FIELD_NUMBER: _ClassVar[int]
    BEST_MS_FIELD_NUMBER: _ClassVar[int]
    WORST_MS_FIELD_NUMBER: _ClassVar[int]
    STDDEV_MS_FIELD_NUMBER: _ClassVar[int]
    JITTER_AVG_MS_FIELD_NUMBER: _ClassVar[int]
    JITTER_MAX_MS_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_FIELD_NUMBER: _ClassVar[int]
    hop: int
    address: str
    name: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    sent: int
    received: int
    loss_percent: float
    last_ms: float
    avg_ms: float
    best_ms: float
    worst_ms: float
    stddev_ms: float
    jitter_avg_ms: float
    jitter_max_ms: float
    unreachable: str
    def __init__(self, hop: _Optional[int] = ..., address: _Optional[str] = ..., name: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ..., sent: _Optional[int] = ..., received: _Optional[int] = ..., loss_percent: _Optional[float] = ..., last_ms: _Optional[float] = ..., avg_ms: _Optional[float] = ..., best_ms: _Optional[float] = ..., worst_ms: _Optional[float] = ..., stddev_ms: _Optional[float] = ..., jitter_avg_ms: _Optional[float] = ..., jitter_max_ms: _Optional[float] = ..., unreachable: _Optional[str] = ...) -> None: ...
