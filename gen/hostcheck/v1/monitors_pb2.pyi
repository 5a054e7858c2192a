import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from hostcheck.v1 import checks_pb2 as _checks_pb2
from hostcheck.v1 import dns_pb2 as _dns_pb2
from hostcheck.v1 import http_pb2 as _http_pb2
from hostcheck.v1 import mtr_pb2 as _mtr_pb2
from hostcheck.v1 import ping_pb2 as _ping_pb2
from hostcheck.v1 import scheduler_pb2 as _scheduler_pb2
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

class CreateMonitorRequest(_message.Message):
    __slots__ = ("target", "checks", "http", "tcp", "ping", "dns", "udp", "traceroute", "agents", "timeout_ms", "ip_version", "tls", "mtr", "name", "interval_s", "alert", "paused", "status_slug")
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
    NAME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    STATUS_SLUG_FIELD_NUMBER: _ClassVar[int]
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
    name: str
    interval_s: int
    alert: MonitorAlert
    paused: bool
    status_slug: str
    def __init__(self, target: _Optional[str] = ..., checks: _Optional[_Iterable[str]] = ..., http: _Optional[_Union[_http_pb2.HttpOptions, _Mapping]] = ..., tcp: _Optional[_Union[_tcp_pb2.TcpOptions, _Mapping]] = ..., ping: _Optional[_Union[_ping_pb2.PingOptions, _Mapping]] = ..., dns: _Optional[_Union[_dns_pb2.DnsOptions, _Mapping]] = ..., udp: _Optional[_Union[_udp_pb2.UdpOptions, _Mapping]] = ..., traceroute: _Optional[_Union[_traceroute_pb2.TracerouteOptions, _Mapping]] = ..., agents: _Optional[_Union[_checks_pb2.AgentSelector, _Mapping]] = ..., timeout_ms: _Optional[int] = ..., ip_version: _Optional[int] = ..., tls: _Optional[_Union[_tls_pb2.TlsOptions, _Mapping]] = ..., mtr: _Optional[_Union[_mtr_pb2.MtrOptions, _Mapping]] = ..., name: _Optional[str] = ..., interval_s: _Optional[int] = ..., alert: _Optional[_Union[MonitorAlert, _Mapping]] = ..., paused: _Optional[bool] = ..., status_slug: _Optional[str] = ...) -> None: ...

class MonitorAlert(_message.Message):
    __slots__ = ("quorum", "for_runs", "webhook_url")
    QUORUM_FIELD_NUMBER: _ClassVar[int]
    FOR_RUNS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    quorum: int
    for_runs: int
    webhook_url: str
    def __init__(self, quorum: _Optional[int] = ..., for_runs: _Optional[int] = ..., webhook_url: _Optional[str] = ...) -> None: ...

class Monitor(_message.Message):
    __slots__ = ("monitor_id", "name", "check", "interval_s", "alert", "state", "state_since", "paused", "status_slug", "created_at", "updated_at", "next_run_at", "last_run", "runs_total", "failing_runs", "uptime_24h", "uptime_7d", "created_by_key_id", "webhook_secret")
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_SINCE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    STATUS_SLUG_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_FIELD_NUMBER: _ClassVar[int]
    RUNS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    FAILING_RUNS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_24H_FIELD_NUMBER: _ClassVar[int]
    UPTIME_7D_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    monitor_id: str
    name: str
    check: _scheduler_pb2.CreateCheckRequest
    interval_s: int
    alert: MonitorAlert
    state: str
    state_since: _timestamp_pb2.Timestamp
    paused: bool
    status_slug: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    next_run_at: _timestamp_pb2.Timestamp
    last_run: MonitorRun
    runs_total: int
    failing_runs: int
    uptime_24h: float
    uptime_7d: float
    created_by_key_id: str
    webhook_secret: str
    def __init__(self, monitor_id: _Optional[str] = ..., name: _Optional[str] = ..., check: _Optional[_Union[_scheduler_pb2.CreateCheckRequest, _Mapping]] = ..., interval_s: _Optional[int] = ..., alert: _Optional[_Union[MonitorAlert, _Mapping]] = ..., state: _Optional[str] = ..., state_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paused: _Optional[bool] = ..., status_slug: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_run: _Optional[_Union[MonitorRun, _Mapping]] = ..., runs_total: _Optional[int] = ..., failing_runs: _Optional[int] = ..., uptime_24h: _Optional[float] = ..., uptime_7d: _Optional[float] = ..., created_by_key_id: _Optional[str] = ..., webhook_secret: _Optional[str] = ...) -> None: ...

class ListMonitorsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class ListMonitorsResponse(_message.Message):
    __slots__ = ("monitors", "next_page_token")
    MONITORS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    monitors: _containers.RepeatedCompositeFieldContainer[Monitor]
    next_page_token: str
    def __init__(self, monitors: _Optional[_Iterable[_Union[Monitor, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReadMonitorRequest(_message.Message):
    __slots__ = ("monitor_id",)
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    monitor_id: str
    def __init__(self, monitor_id: _Optional[str] = ...) -> None: ...

class UpdateMonitorRequest(_message.Message):
    __slots__ = ("monitor_id", "monitor", "update_mask", "rotate_webhook_secret")
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ROTATE_WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    monitor_id: str
    monitor: CreateMonitorRequest
    update_mask: _field_mask_pb2.FieldMask
    rotate_webhook_secret: bool
    def __init__(self, monitor_id: _Optional[str] = ..., monitor: _Optional[_Union[CreateMonitorRequest, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., rotate_webhook_secret: _Optional[bool] = ...) -> None: ...

class DeleteMonitorRequest(_message.Message):
    __slots__ = ("monitor_id",)
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    monitor_id: str
    def __init__(self, monitor_id: _Optional[str] = ...) -> None: ...

class DeleteMonitorResponse(_message.Message):
    __slots__ = ("monitor_id",)
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    monitor_id: str
    def __init__(self, monitor_id: _Optional[str] = ...) -> None: ...

class MonitorRunAgent(_message.Message):
    __slots__ = ("agent_id", "agent_name", "country", "city", "success", "error_code", "error", "duration_ms")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    agent_name: str
    country: str
    city: str
    success: bool
    error_code: str
    error: str
    duration_ms: float
    def __init__(self, agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., country: _Optional[str] = ..., city: _Optional[str] = ..., success: _Optional[bool] = ..., error_code: _Optional[str] = ..., error: _Optional[str] = ..., duration_ms: _Optional[float] = ...) -> None: ...

class MonitorRun(_message.Message):
    __slots__ = ("seq", "check_id", "scheduled_at", "started_at", "finished_at", "verdict", "agents_total", "agents_failing", "agents", "state", "reason")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    AGENTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FAILING_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    check_id: str
    scheduled_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    verdict: str
    agents_total: int
    agents_failing: int
    agents: _containers.RepeatedCompositeFieldContainer[MonitorRunAgent]
    state: str
    reason: str
    def __init__(self, seq: _Optional[int] = ..., check_id: _Optional[str] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verdict: _Optional[str] = ..., agents_total: _Optional[int] = ..., agents_failing: _Optional[int] = ..., agents: _Optional[_Iterable[_Union[MonitorRunAgent, _Mapping]]] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListMonitorRunsRequest(_message.Message):
    __slots__ = ("monitor_id", "page_size", "page_token")
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    monitor_id: str
    page_size: int
    page_token: str
    def __init__(self, monitor_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMonitorRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[MonitorRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[MonitorRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MonitorEvent(_message.Message):
    __slots__ = ("event_id", "monitor_id", "from_state", "to_state", "at", "run_seq", "check_id", "failing_agents", "notification", "delivery_attempts", "delivered_at", "last_delivery_error")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    RUN_SEQ_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    FAILING_AGENTS_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_DELIVERY_ERROR_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    monitor_id: str
    from_state: str
    to_state: str
    at: _timestamp_pb2.Timestamp
    run_seq: int
    check_id: str
    failing_agents: _containers.RepeatedCompositeFieldContainer[MonitorRunAgent]
    notification: str
    delivery_attempts: int
    delivered_at: _timestamp_pb2.Timestamp
    last_delivery_error: str
    def __init__(self, event_id: _Optional[str] = ..., monitor_id: _Optional[str] = ..., from_state: _Optional[str] = ..., to_state: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_seq: _Optional[int] = ..., check_id: _Optional[str] = ..., failing_agents: _Optional[_Iterable[_Union[MonitorRunAgent, _Mapping]]] = ..., notification: _Optional[str] = ..., delivery_attempts: _Optional[int] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_delivery_error: _Optional[str] = ...) -> None: ...

class ListMonitorEventsRequest(_message.Message):
    __slots__ = ("monitor_id", "page_size", "page_token")
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    monitor_id: str
    page_size: int
    page_token: str
    def __init__(self, monitor_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMonitorEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[MonitorEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[MonitorEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchMonitorRequest(_message.Message):
    __slots__ = ("monitor_id",)
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    monitor_id: str
    def __init__(self, monitor_id: _Optional[str] = ...) -> None: ...

class WatchMonitorResponse(_message.Message):
    __slots__ = ("event", "monitor", "run", "change")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    event: str
    monitor: Monitor
    run: MonitorRun
    change: MonitorEvent
    def __init__(self, event: _Optional[str] = ..., monitor: _Optional[_Union[Monitor, _Mapping]] = ..., run: _Optional[_Union[MonitorRun, _Mapping]] = ..., change: _Optional[_Union[MonitorEvent, _Mapping]] = ...) -> None: ...

class ScrapeMonitorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReadStatusPageRequest(_message.Message):
    __slots__ = ("slug",)
    SLUG_FIELD_NUMBER: _ClassVar[int]
    slug: str
    def __init__(self, slug: _Optional[str] = ...) -> None: ...

class PublicMonitor(_message.Message):
    __slots__ = ("name", "state", "state_since", "uptime_24h", "uptime_7d", "last_run_at", "interval_s", "check_types")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_SINCE_FIELD_NUMBER: _ClassVar[int]
    UPTIME_24H_FIELD_NUMBER: _ClassVar[int]
    UPTIME_7D_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPES_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    state_since: _timestamp_pb2.Timestamp
    uptime_24h: float
    uptime_7d: float
    last_run_at: _timestamp_pb2.Timestamp
    interval_s: int
    check_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., state_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uptime_24h: _Optional[float] = ..., uptime_7d: _Optional[float] = ..., last_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval_s: _Optional[int] = ..., check_types: _Optional[_Iterable[str]] = ...) -> None: ...

class StatusPage(_message.Message):
    __slots__ = ("slug", "monitors")
    SLUG_FIELD_NUMBER: _ClassVar[int]
    MONITORS_FIELD_NUMBER: _ClassVar[int]
    slug: str
    monitors: _containers.RepeatedCompositeFieldContainer[PublicMonitor]
    def __init__(self, slug: _Optional[str] = ..., monitors: _Optional[_Iterable[_Union[PublicMonitor, _Mapping]]] = ...) -> None: ...

class ClaimDueRunsRequest(_message.Message):
    __slots__ = ("scheduler_id", "limit")
    SCHEDULER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    scheduler_id: str
    limit: int
    def __init__(self, scheduler_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ClaimedRun(_message.Message):
    __slots__ = ("monitor_id", "seq", "check_id", "scheduled_at", "check", "created_by_key_id")
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    monitor_id: str
    seq: int
    check_id: str
    scheduled_at: _timestamp_pb2.Timestamp
    check: _scheduler_pb2.CreateCheckRequest
    created_by_key_id: str
    def __init__(self, monitor_id: _Optional[str] = ..., seq: _Optional[int] = ..., check_id: _Optional[str] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., check: _Optional[_Union[_scheduler_pb2.CreateCheckRequest, _Mapping]] = ..., created_by_key_id: _Optional[str] = ...) -> None: ...

class ClaimDueRunsResponse(_message.Message):
    __slots__ = ("runs", "next_due_at")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[ClaimedRun]
    next_due_at: _timestamp_pb2.Timestamp
    def __init__(self, runs: _Optional[_Iterable[_Union[ClaimedRun, _Mapping]]] = ..., next_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReportRunNotStartedRequest(_message.Message):
    __slots__ = ("monitor_id", "seq", "code", "reason")
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    monitor_id: str
    seq: int
    code: str
    reason: str
    def __init__(self, monitor_id: _Optional[str] = ..., seq: _Optional[int] = ..., code: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReportRunNotStartedResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
