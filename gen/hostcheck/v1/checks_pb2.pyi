import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from hostcheck.v1 import dns_pb2 as _dns_pb2
from hostcheck.v1 import http_pb2 as _http_pb2
from hostcheck.v1 import mtr_pb2 as _mtr_pb2
from hostcheck.v1 import ping_pb2 as _ping_pb2
from hostcheck.v1 import tcp_pb2 as _tcp_pb2
from hostcheck.v1 import tls_pb2 as _tls_pb2
from hostcheck.v1 import traceroute_pb2 as _traceroute_pb2
from hostcheck.v1 import udp_pb2 as _udp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckOptions(_message.Message):
    __slots__ = ("http", "tcp", "ping", "dns", "udp", "traceroute", "tls", "mtr")
    HTTP_FIELD_NUMBER: _ClassVar[int]
    TCP_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    UDP_FIELD_NUMBER: _ClassVar[int]
    TRACEROUTE_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    MTR_FIELD_NUMBER: _ClassVar[int]
    http: _http_pb2.HttpOptions
    tcp: _tcp_pb2.TcpOptions
    ping: _ping_pb2.PingOptions
    dns: _dns_pb2.DnsOptions
    udp: _udp_pb2.UdpOptions
    traceroute: _traceroute_pb2.TracerouteOptions
    tls: _tls_pb2.TlsOptions
    mtr: _mtr_pb2.MtrOptions
    def __init__(self, http: _Optional[_Union[_http_pb2.HttpOptions, _Mapping]] = ..., tcp: _Optional[_Union[_tcp_pb2.TcpOptions, _Mapping]] = ..., ping: _Optional[_Union[_ping_pb2.PingOptions, _Mapping]] = ..., dns: _Optional[_Union[_dns_pb2.DnsOptions, _Mapping]] = ..., udp: _Optional[_Union[_udp_pb2.UdpOptions, _Mapping]] = ..., traceroute: _Optional[_Union[_traceroute_pb2.TracerouteOptions, _Mapping]] = ..., tls: _Optional[_Union[_tls_pb2.TlsOptions, _Mapping]] = ..., mtr: _Optional[_Union[_mtr_pb2.MtrOptions, _Mapping]] = ...) -> None: ...

class AgentSelector(_message.Message):
    __slots__ = ("regions", "countries", "cities", "labels", "agent_ids", "limit", "asns", "continents", "networks", "exclude_labels", "magic", "locations", "same_as")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ExcludeLabelsEntry(_message.Message):
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
    ASNS_FIELD_NUMBER: _ClassVar[int]
    CONTINENTS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_LABELS_FIELD_NUMBER: _ClassVar[int]
    MAGIC_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    SAME_AS_FIELD_NUMBER: _ClassVar[int]
    regions: _containers.RepeatedScalarFieldContainer[str]
    countries: _containers.RepeatedScalarFieldContainer[str]
    cities: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    asns: _containers.RepeatedScalarFieldContainer[int]
    continents: _containers.RepeatedScalarFieldContainer[str]
    networks: _containers.RepeatedScalarFieldContainer[str]
    exclude_labels: _containers.ScalarMap[str, str]
    magic: _containers.RepeatedScalarFieldContainer[str]
    locations: _containers.RepeatedCompositeFieldContainer[AgentLocation]
    same_as: str
    def __init__(self, regions: _Optional[_Iterable[str]] = ..., countries: _Optional[_Iterable[str]] = ..., cities: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., agent_ids: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ..., asns: _Optional[_Iterable[int]] = ..., continents: _Optional[_Iterable[str]] = ..., networks: _Optional[_Iterable[str]] = ..., exclude_labels: _Optional[_Mapping[str, str]] = ..., magic: _Optional[_Iterable[str]] = ..., locations: _Optional[_Iterable[_Union[AgentLocation, _Mapping]]] = ..., same_as: _Optional[str] = ...) -> None: ...

class AgentLocation(_message.Message):
    __slots__ = ("continents", "regions", "countries", "cities", "asns", "networks", "labels", "exclude_labels", "magic", "limit")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ExcludeLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTINENTS_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    COUNTRIES_FIELD_NUMBER: _ClassVar[int]
    CITIES_FIELD_NUMBER: _ClassVar[int]
    ASNS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_LABELS_FIELD_NUMBER: _ClassVar[int]
    MAGIC_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    continents: _containers.RepeatedScalarFieldContainer[str]
    regions: _containers.RepeatedScalarFieldContainer[str]
    countries: _containers.RepeatedScalarFieldContainer[str]
    cities: _containers.RepeatedScalarFieldContainer[str]
    asns: _containers.RepeatedScalarFieldContainer[int]
    networks: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    exclude_labels: _containers.ScalarMap[str, str]
    magic: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    def __init__(self, continents: _Optional[_Iterable[str]] = ..., regions: _Optional[_Iterable[str]] = ..., countries: _Optional[_Iterable[str]] = ..., cities: _Optional[_Iterable[str]] = ..., asns: _Optional[_Iterable[int]] = ..., networks: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., exclude_labels: _Optional[_Mapping[str, str]] = ..., magic: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ResultData(_message.Message):
    __slots__ = ("http", "tcp", "ping", "dns", "udp", "traceroute", "tls", "mtr")
    HTTP_FIELD_NUMBER: _ClassVar[int]
    TCP_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    UDP_FIELD_NUMBER: _ClassVar[int]
    TRACEROUTE_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    MTR_FIELD_NUMBER: _ClassVar[int]
    http: _http_pb2.HttpResult
    tcp: _tcp_pb2.TcpResult
    ping: _ping_pb2.PingResult
    dns: _dns_pb2.DnsResult
    udp: _udp_pb2.UdpResult
    traceroute: _traceroute_pb2.TracerouteResult
    tls: _tls_pb2.TlsResult
    mtr: _mtr_pb2.MtrResult
    def __init__(self, http: _Optional[_Union[_http_pb2.HttpResult, _Mapping]] = ..., tcp: _Optional[_Union[_tcp_pb2.TcpResult, _Mapping]] = ..., ping: _Optional[_Union[_ping_pb2.PingResult, _Mapping]] = ..., dns: _Optional[_Union[_dns_pb2.DnsResult, _Mapping]] = ..., udp: _Optional[_Union[_udp_pb2.UdpResult, _Mapping]] = ..., traceroute: _Optional[_Union[_traceroute_pb2.TracerouteResult, _Mapping]] = ..., tls: _Optional[_Union[_tls_pb2.TlsResult, _Mapping]] = ..., mtr: _Optional[_Union[_mtr_pb2.MtrResult, _Mapping]] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("task_id", "check_id", "agent_id", "check_type", "success", "data", "error", "error_code", "duration_ms", "started_at", "created_at", "late", "agent", "location", "region", "country", "city")
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
    AGENT_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    check_id: str
    agent_id: str
    check_type: str
    success: bool
    data: ResultData
    error: str
    error_code: str
    duration_ms: float
    started_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    late: bool
    agent: str
    location: str
    region: str
    country: str
    city: str
    def __init__(self, task_id: _Optional[str] = ..., check_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., check_type: _Optional[str] = ..., success: _Optional[bool] = ..., data: _Optional[_Union[ResultData, _Mapping]] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ..., duration_ms: _Optional[float] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., late: _Optional[bool] = ..., agent: _Optional[str] = ..., location: _Optional[str] = ..., region: _Optional[str] = ..., country: _Optional[str] = ..., city: _Optional[str] = ...) -> None: ...

class CheckTask(_message.Message):
    __slots__ = ("task_id", "check_id", "agent_id", "agent_name", "location", "region", "country", "city", "check_type", "status", "reason", "created_at", "deadline", "completed_at", "result", "started_at")
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
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
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
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, task_id: _Optional[str] = ..., check_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., location: _Optional[str] = ..., region: _Optional[str] = ..., country: _Optional[str] = ..., city: _Optional[str] = ..., check_type: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[CheckResult, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Check(_message.Message):
    __slots__ = ("check_id", "target", "check_types", "status", "created_at", "completed_at", "deadline", "options", "tasks", "results", "tasks_total", "tasks_done", "timeout_ms", "ip_version", "created_by_key_id", "tasks_succeeded", "tasks_failed", "tasks_timed_out", "tasks_running", "outcome", "monitor_id", "monitor_run")
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
    CREATED_BY_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    TASKS_FAILED_FIELD_NUMBER: _ClassVar[int]
    TASKS_TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    TASKS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    MONITOR_RUN_FIELD_NUMBER: _ClassVar[int]
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
    created_by_key_id: str
    tasks_succeeded: int
    tasks_failed: int
    tasks_timed_out: int
    tasks_running: int
    outcome: str
    monitor_id: str
    monitor_run: int
    def __init__(self, check_id: _Optional[str] = ..., target: _Optional[str] = ..., check_types: _Optional[_Iterable[str]] = ..., status: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., options: _Optional[_Union[CheckOptions, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[CheckTask, _Mapping]]] = ..., results: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ..., tasks_total: _Optional[int] = ..., tasks_done: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., ip_version: _Optional[int] = ..., created_by_key_id: _Optional[str] = ..., tasks_succeeded: _Optional[int] = ..., tasks_failed: _Optional[int] = ..., tasks_timed_out: _Optional[int] = ..., tasks_running: _Optional[int] = ..., outcome: _Optional[str] = ..., monitor_id: _Optional[str] = ..., monitor_run: _Optional[int] = ...) -> None: ...
