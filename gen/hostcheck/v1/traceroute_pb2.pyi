from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TracerouteOptions(_message.Message):
    __slots__ = ("max_hops", "resolve_names", "probes_per_hop", "protocol", "port")
    MAX_HOPS_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_NAMES_FIELD_NUMBER: _ClassVar[int]
    PROBES_PER_HOP_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    max_hops: int
    resolve_names: bool
    probes_per_hop: int
    protocol: str
    port: int
    def __init__(self, max_hops: _Optional[int] = ..., resolve_names: _Optional[bool] = ..., probes_per_hop: _Optional[int] = ..., protocol: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class TracerouteResult(_message.Message):
    __slots__ = ("address", "ip_version", "max_hops", "probes_per_hop", "destination_reached", "complete", "hop_count", "hops", "protocol", "port")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_HOPS_FIELD_NUMBER: _ClassVar[int]
    PROBES_PER_HOP_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_REACHED_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    HOP_COUNT_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    address: str
    ip_version: int
    max_hops: int
    probes_per_hop: int
    destination_reached: bool
    complete: bool
    hop_count: int
    hops: _containers.RepeatedCompositeFieldContainer[TracerouteHop]
    protocol: str
    port: int
    def __init__(self, address: _Optional[str] = ..., ip_version: _Optional[int] = ..., max_hops: _Optional[int] = ..., probes_per_hop: _Optional[int] = ..., destination_reached: _Optional[bool] = ..., complete: _Optional[bool] = ..., hop_count: _Optional[int] = ..., hops: _Optional[_Iterable[_Union[TracerouteHop, _Mapping]]] = ..., protocol: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class TracerouteHop(_message.Message):
    __slots__ = ("hop", "address", "rtts_ms", "avg_rtt_ms", "loss", "name", "addresses", "unreachable")
    HOP_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RTTS_MS_FIELD_NUMBER: _ClassVar[int]
    AVG_RTT_MS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_FIELD_NUMBER: _ClassVar[int]
    hop: int
    address: str
    rtts_ms: _containers.RepeatedScalarFieldContainer[float]
    avg_rtt_ms: float
    loss: float
    name: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    unreachable: str
    def __init__(self, hop: _Optional[int] = ..., address: _Optional[str] = ..., rtts_ms: _Optional[_Iterable[float]] = ..., avg_rtt_ms: _Optional[float] = ..., loss: _Optional[float] = ..., name: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ..., unreachable: _Optional[str] = ...) -> None: ...
