import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HttpOptions(_message.Message):
    __slots__ = ("method", "path", "headers", "body", "expected_status", "follow_redirects", "body_regexp", "port", "scheme", "http2", "insecure_tls")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STATUS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_REDIRECTS_FIELD_NUMBER: _ClassVar[int]
    BODY_REGEXP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    HTTP2_FIELD_NUMBER: _ClassVar[int]
    INSECURE_TLS_FIELD_NUMBER: _ClassVar[int]
    method: str
    path: str
    headers: _containers.ScalarMap[str, str]
    body: str
    expected_status: _containers.RepeatedScalarFieldContainer[int]
    follow_redirects: bool
    body_regexp: str
    port: int
    scheme: str
    http2: bool
    insecure_tls: bool
    def __init__(self, method: _Optional[str] = ..., path: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[str] = ..., expected_status: _Optional[_Iterable[int]] = ..., follow_redirects: _Optional[bool] = ..., body_regexp: _Optional[str] = ..., port: _Optional[int] = ..., scheme: _Optional[str] = ..., http2: _Optional[bool] = ..., insecure_tls: _Optional[bool] = ...) -> None: ...

class TcpOptions(_message.Message):
    __slots__ = ("port",)
    PORT_FIELD_NUMBER: _ClassVar[int]
    port: int
    def __init__(self, port: _Optional[int] = ...) -> None: ...

class PingOptions(_message.Message):
    __slots__ = ("count", "interval_ms", "size")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    count: int
    interval_ms: int
    size: int
    def __init__(self, count: _Optional[int] = ..., interval_ms: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class DnsOptions(_message.Message):
    __slots__ = ("record_type", "resolver")
    RECORD_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOLVER_FIELD_NUMBER: _ClassVar[int]
    record_type: str
    resolver: str
    def __init__(self, record_type: _Optional[str] = ..., resolver: _Optional[str] = ...) -> None: ...

class UdpOptions(_message.Message):
    __slots__ = ("port", "payload", "payload_hex")
    PORT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_HEX_FIELD_NUMBER: _ClassVar[int]
    port: int
    payload: str
    payload_hex: str
    def __init__(self, port: _Optional[int] = ..., payload: _Optional[str] = ..., payload_hex: _Optional[str] = ...) -> None: ...

class TracerouteOptions(_message.Message):
    __slots__ = ("max_hops", "resolve_names", "probes_per_hop")
    MAX_HOPS_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_NAMES_FIELD_NUMBER: _ClassVar[int]
    PROBES_PER_HOP_FIELD_NUMBER: _ClassVar[int]
    max_hops: int
    resolve_names: bool
    probes_per_hop: int
    def __init__(self, max_hops: _Optional[int] = ..., resolve_names: _Optional[bool] = ..., probes_per_hop: _Optional[int] = ...) -> None: ...

class CheckOptions(_message.Message):
    __slots__ = ("http", "tcp", "ping", "dns", "udp", "traceroute")
    HTTP_FIELD_NUMBER: _ClassVar[int]
    TCP_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    UDP_FIELD_NUMBER: _ClassVar[int]
    TRACEROUTE_FIELD_NUMBER: _ClassVar[int]
    http: HttpOptions
    tcp: TcpOptions
    ping: PingOptions
    dns: DnsOptions
    udp: UdpOptions
    traceroute: TracerouteOptions
    def __init__(self, http: _Optional[_Union[HttpOptions, _Mapping]] = ..., tcp: _Optional[_Union[TcpOptions, _Mapping]] = ..., ping: _Optional[_Union[PingOptions, _Mapping]] = ..., dns: _Optional[_Union[DnsOptions, _Mapping]] = ..., udp: _Optional[_Union[UdpOptions, _Mapping]] = ..., traceroute: _Optional[_Union[TracerouteOptions, _Mapping]] = ...) -> None: ...

class AgentSelector(_message.Message):
    __slots__ = ("regions", "countries", "cities", "labels", "agent_ids", "limit")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    CITIES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    regions: _containers.RepeatedScalarFieldContainer[str]
    countries: _containers.RepeatedScalarFieldContainer[str]
    cities: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    def __init__(self, regions: _Optional[_Iterable[str]] = ..., countries: _Optional[_Iterable[str]] = ..., cities: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., agent_ids: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("task_id", "check_id", "agent_id", "check_type", "success", "data", "error", "error_code", "duration_ms", "started_at", "created_at", "late")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    check_id: str
    agent_id: str
    check_type: str
    success: bool
    data: _struct_pb2.Struct
    error: str
    error_code: str
    duration_ms: float
    started_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    late: bool
    def __init__(self, task_id: _Optional[str] = ..., check_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., check_type: _Optional[str] = ..., success: _Optional[bool] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ..., duration_ms: _Optional[float] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., late: _Optional[bool] = ...) -> None: ...

class CheckTask(_message.Message):
    __slots__ = ("task_id", "check_id", "agent_id", "agent_name", "location", "region", "country", "city", "check_type", "status", "reason", "created_at", "deadline", "completed_at", "result")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    check_id: str
    agent_id: str
    agent_name: str
    location: str
    region: str
    country: str
    city: str
    check_type: str
    status: str
    reason: str
    created_at: _timestamp_pb2.Timestamp
    deadline: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    result: CheckResult
    def __init__(self, task_id: _Optional[str] = ..., check_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., location: _Optional[str] = ..., region: _Optional[str] = ..., country: _Optional[str] = ..., city: _Optional[str] = ..., check_type: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[CheckResult, _Mapping]] = ...) -> None: ...

class Check(_message.Message):
    __slots__ = ("check_id", "target", "check_types", "status", "created_at", "completed_at", "deadline", "options", "tasks", "results", "tasks_total", "tasks_done", "timeout_ms", "ip_version")
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TASKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    TASKS_DONE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    check_id: str
    target: str
    check_types: _containers.RepeatedScalarFieldContainer[str]
    status: str
    created_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    deadline: _timestamp_pb2.Timestamp
    options: CheckOptions
    tasks: _containers.RepeatedCompositeFieldContainer[CheckTask]
    results: _containers.RepeatedCompositeFieldContainer[CheckResult]
    tasks_total: int
    tasks_done: int
    timeout_ms: int
    ip_version: int
    def __init__(self, check_id: _Optional[str] = ..., target: _Optional[str] = ..., check_types: _Optional[_Iterable[str]] = ..., status: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., options: _Optional[_Union[CheckOptions, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[CheckTask, _Mapping]]] = ..., results: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ..., tasks_total: _Optional[int] = ..., tasks_done: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., ip_version: _Optional[int] = ...) -> None: ...
