import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from hostcheck.v1 import checks_pb2 as _checks_pb2
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

class CreateCheckRequest(_message.Message):
    __slots__ = ("target", "checks", "http", "tcp", "ping", "dns", "udp", "traceroute", "agents", "timeout_ms", "ip_version", "tls", "mtr")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    TCP_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    UDP_FIELD_NUMBER: _ClassVar[int]
    TRACEROUTE_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    MTR_FIELD_NUMBER: _ClassVar[int]
    target: str
    checks: _containers.RepeatedScalarFieldContainer[str]
    http: _http_pb2.HttpOptions
    tcp: _tcp_pb2.TcpOptions
    ping: _ping_pb2.PingOptions
    dns: _dns_pb2.DnsOptions
    udp: _udp_pb2.UdpOptions
    traceroute: _traceroute_pb2.TracerouteOptions
    agents: _checks_pb2.AgentSelector
    timeout_ms: int
    ip_version: int
    tls: _tls_pb2.TlsOptions
    mtr: _mtr_pb2.MtrOptions
    def __init__(self, target: _Optional[str] = ..., checks: _Optional[_Iterable[str]] = ..., http: _Optional[_Union[_http_pb2.HttpOptions, _Mapping]] = ..., tcp: _Optional[_Union[_tcp_pb2.TcpOptions, _Mapping]] = ..., ping: _Optional[_Union[_ping_pb2.PingOptions, _Mapping]] = ..., dns: _Optional[_Union[_dns_pb2.DnsOptions, _Mapping]] = ..., udp: _Optional[_Union[_udp_pb2.UdpOptions, _Mapping]] = ..., traceroute: _Optional[_Union[_traceroute_pb2.TracerouteOptions, _Mapping]] = ..., agents: _Optional[_Union[_checks_pb2.AgentSelector, _Mapping]] = ..., timeout_ms: _Optional[int] = ..., ip_version: _Optional[int] = ..., tls: _Optional[_Union[_tls_pb2.TlsOptions, _Mapping]] = ..., mtr: _Optional[_Union[_mtr_pb2.MtrOptions, _Mapping]] = ...) -> None: ...

class CreateCheckResponse(_message.Message):
    __slots__ = ("check_id", "check")
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    check_id: str
    check: _checks_pb2.Check
    def __init__(self, check_id: _Optional[str] = ..., check: _Optional[_Union[_checks_pb2.Check, _Mapping]] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("hello", "heartbeat", "results", "progress")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    hello: AgentHello
    heartbeat: AgentHeartbeat
    results: ResultBatch
    progress: ProgressBatch
    def __init__(self, hello: _Optional[_Union[AgentHello, _Mapping]] = ..., heartbeat: _Optional[_Union[AgentHeartbeat, _Mapping]] = ..., results: _Optional[_Union[ResultBatch, _Mapping]] = ..., progress: _Optional[_Union[ProgressBatch, _Mapping]] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("welcome", "tasks", "cancel", "ack", "drain")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    tasks: TaskBatch
    cancel: CancelTasks
    ack: ResultAck
    drain: Drain
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., tasks: _Optional[_Union[TaskBatch, _Mapping]] = ..., cancel: _Optional[_Union[CancelTasks, _Mapping]] = ..., ack: _Optional[_Union[ResultAck, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ...) -> None: ...

class AgentHello(_message.Message):
    __slots__ = ("version", "capabilities", "unacked_results")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    UNACKED_RESULTS_FIELD_NUMBER: _ClassVar[int]
    version: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    unacked_results: int
    def __init__(self, version: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., unacked_results: _Optional[int] = ...) -> None: ...

class AgentHeartbeat(_message.Message):
    __slots__ = ("tasks_in_flight",)
    TASKS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    tasks_in_flight: int
    def __init__(self, tasks_in_flight: _Optional[int] = ...) -> None: ...

class ResultBatch(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaskResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "check_id", "check_type", "success", "data", "error", "error_code", "duration_ms", "started_at", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    check_id: str
    check_type: str
    success: bool
    data: _checks_pb2.ResultData
    error: str
    error_code: str
    duration_ms: float
    started_at: _timestamp_pb2.Timestamp
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, task_id: _Optional[str] = ..., check_id: _Optional[str] = ..., check_type: _Optional[str] = ..., success: _Optional[bool] = ..., data: _Optional[_Union[_checks_pb2.ResultData, _Mapping]] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ..., duration_ms: _Optional[float] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TaskProgress(_message.Message):
    __slots__ = ("task_id", "check_id", "check_type", "started", "started_at", "message", "done", "total", "data")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    check_id: str
    check_type: str
    started: bool
    started_at: _timestamp_pb2.Timestamp
    message: str
    done: int
    total: int
    data: _checks_pb2.ResultData
    def __init__(self, task_id: _Optional[str] = ..., check_id: _Optional[str] = ..., check_type: _Optional[str] = ..., started: _Optional[bool] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., data: _Optional[_Union[_checks_pb2.ResultData, _Mapping]] = ...) -> None: ...

class ProgressBatch(_message.Message):
    __slots__ = ("progress",)
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    progress: _containers.RepeatedCompositeFieldContainer[TaskProgress]
    def __init__(self, progress: _Optional[_Iterable[_Union[TaskProgress, _Mapping]]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("scheduler_id", "agent_id", "heartbeat_interval_s")
    SCHEDULER_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    scheduler_id: str
    agent_id: str
    heartbeat_interval_s: int
    def __init__(self, scheduler_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., heartbeat_interval_s: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "check_id", "check_type", "target", "options", "timeout_ms", "deadline", "ip_version", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    check_id: str
    check_type: str
    target: str
    options: _checks_pb2.CheckOptions
    timeout_ms: int
    deadline: _timestamp_pb2.Timestamp
    ip_version: int
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, task_id: _Optional[str] = ..., check_id: _Optional[str] = ..., check_type: _Optional[str] = ..., target: _Optional[str] = ..., options: _Optional[_Union[_checks_pb2.CheckOptions, _Mapping]] = ..., timeout_ms: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ip_version: _Optional[int] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TaskBatch(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class CancelTasks(_message.Message):
    __slots__ = ("task_ids", "reason")
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ResultAck(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class RoutedTasks(_message.Message):
    __slots__ = ("agent_id", "batch")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    batch: TaskBatch
    def __init__(self, agent_id: _Optional[str] = ..., batch: _Optional[_Union[TaskBatch, _Mapping]] = ...) -> None: ...
