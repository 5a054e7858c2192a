from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DnsOptions(_message.Message):
    __slots__ = ("record_type", "resolver", "protocol", "trace", "tls_server_name")
    RECORD_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOLVER_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    TLS_SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    record_type: str
    resolver: str
    protocol: str
    trace: bool
    tls_server_name: str
    def __init__(self, record_type: _Optional[str] = ..., resolver: _Optional[str] = ..., protocol: _Optional[str] = ..., trace: _Optional[bool] = ..., tls_server_name: _Optional[str] = ...) -> None: ...

class DnsResult(_message.Message):
    __slots__ = ("query", "record_type", "resolver", "rcode", "query_ms", "answers", "authority", "protocol", "trace")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    RECORD_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOLVER_FIELD_NUMBER: _ClassVar[int]
    RCODE_FIELD_NUMBER: _ClassVar[int]
    QUERY_MS_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    query: str
    record_type: str
    resolver: str
    rcode: str
    query_ms: float
    answers: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    authority: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    protocol: str
    trace: _containers.RepeatedCompositeFieldContainer[DnsTraceStep]
    def __init__(self, query: _Optional[str] = ..., record_type: _Optional[str] = ..., resolver: _Optional[str] = ..., rcode: _Optional[str] = ..., query_ms: _Optional[float] = ..., answers: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ..., authority: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ..., protocol: _Optional[str] = ..., trace: _Optional[_Iterable[_Union[DnsTraceStep, _Mapping]]] = ...) -> None: ...

class DnsTraceStep(_message.Message):
    __slots__ = ("zone", "server", "server_name", "rcode", "query_ms", "answers", "referral", "error")
    ZONE_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    RCODE_FIELD_NUMBER: _ClassVar[int]
    QUERY_MS_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    REFERRAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    zone: str
    server: str
    server_name: str
    rcode: str
    query_ms: float
    answers: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    referral: _containers.RepeatedCompositeFieldContainer[DnsRecord]
    error: str
    def __init__(self, zone: _Optional[str] = ..., server: _Optional[str] = ..., server_name: _Optional[str] = ..., rcode: _Optional[str] = ..., query_ms: _Optional[float] = ..., answers: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ..., referral: _Optional[_Iterable[_Union[DnsRecord, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...

class DnsRecord(_message.Message):
    __slots__ = ("name", "type", "ttl", "value", "priority", "exchange", "weight", "port", "target", "mname", "rname", "serial", "refresh", "retry", "expire", "minimum", "flags", "tag", "caa_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MNAME_FIELD_NUMBER: _ClassVar[int]
    RNAME_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    CAA_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    ttl: int
    value: str
    priority: int
    exchange: str
    weight: int
    port: int
    target: str
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int
    flags: int
    tag: str
    caa_value: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., ttl: _Optional[int] = ..., value: _Optional[str] = ..., priority: _Optional[int] = ..., exchange: _Optional[str] = ..., weight: _Optional[int] = ..., port: _Optional[int] = ..., target: _Optional[str] = ..., mname: _Optional[str] = ..., rname: _Optional[str] = ..., serial: _Optional[int] = ..., refresh: _Optional[int] = ..., retry: _Optional[int] = ..., expire: _Optional[int] = ..., minimum: _Optional[int] = ..., flags: _Optional[int] = ..., tag: _Optional[str] = ..., caa_value: _Optional[str] = ...) -> None: ...
