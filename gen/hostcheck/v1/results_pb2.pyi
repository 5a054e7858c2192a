import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from hostcheck.v1 import checks_pb2 as _checks_pb2
from hostcheck.v1 import registry_pb2 as _registry_pb2
from hostcheck.v1 import scheduler_pb2 as _scheduler_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetCheckRequest(_message.Message):
    __slots__ = ("check_id",)
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    check_id: str
    def __init__(self, check_id: _Optional[str] = ...) -> None: ...

class GetCheckResponse(_message.Message):
    __slots__ = ("check",)
    CHECK_FIELD_NUMBER: _ClassVar[int]
    check: _checks_pb2.Check
    def __init__(self, check: _Optional[_Union[_checks_pb2.Check, _Mapping]] = ...) -> None: ...

class ReadCheckRequest(_message.Message):
    __slots__ = ("check_id",)
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    check_id: str
    def __init__(self, check_id: _Optional[str] = ...) -> None: ...

class ListChecksRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status", "target", "monitor_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: str
    target: str
    monitor_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[str] = ..., target: _Optional[str] = ..., monitor_id: _Optional[str] = ...) -> None: ...

class ListChecksResponse(_message.Message):
    __slots__ = ("checks", "next_page_token")
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    checks: _containers.RepeatedCompositeFieldContainer[_checks_pb2.Check]
    next_page_token: str
    def __init__(self, checks: _Optional[_Iterable[_Union[_checks_pb2.Check, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteCheckRequest(_message.Message):
    __slots__ = ("check_id",)
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    check_id: str
    def __init__(self, check_id: _Optional[str] = ...) -> None: ...

class DeleteCheckResponse(_message.Message):
    __slots__ = ("check_id",)
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    check_id: str
    def __init__(self, check_id: _Optional[str] = ...) -> None: ...

class WatchCheckRequest(_message.Message):
    __slots__ = ("check_id",)
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    check_id: str
    def __init__(self, check_id: _Optional[str] = ...) -> None: ...

class WatchCheckResponse(_message.Message):
    __slots__ = ("event", "check", "task", "check_status", "tasks_done", "tasks_total", "progress")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    CHECK_STATUS_FIELD_NUMBER: _ClassVar[int]
    TASKS_DONE_FIELD_NUMBER: _ClassVar[int]
    TASKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    event: str
    check: _checks_pb2.Check
    task: _checks_pb2.CheckTask
    check_status: str
    tasks_done: int
    tasks_total: int
    progress: _scheduler_pb2.TaskProgress
    def __init__(self, event: _Optional[str] = ..., check: _Optional[_Union[_checks_pb2.Check, _Mapping]] = ..., task: _Optional[_Union[_checks_pb2.CheckTask, _Mapping]] = ..., check_status: _Optional[str] = ..., tasks_done: _Optional[int] = ..., tasks_total: _Optional[int] = ..., progress: _Optional[_Union[_scheduler_pb2.TaskProgress, _Mapping]] = ...) -> None: ...

class PlannedTask(_message.Message):
    __slots__ = ("task_id", "agent_id", "check_type", "deadline", "agent_name", "location", "region", "country", "city")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    agent_id: str
    check_type: str
    deadline: _timestamp_pb2.Timestamp
    agent_name: str
    location: str
    region: str
    country: str
    city: str
    def __init__(self, task_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., check_type: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., agent_name: _Optional[str] = ..., location: _Optional[str] = ..., region: _Optional[str] = ..., country: _Optional[str] = ..., city: _Optional[str] = ...) -> None: ...

class OpenCheckRequest(_message.Message):
    __slots__ = ("check_id", "request", "tasks", "deadline", "client_ip", "created_by_key_id", "monitor_id", "monitor_run")
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    MONITOR_RUN_FIELD_NUMBER: _ClassVar[int]
    check_id: str
    request: _scheduler_pb2.CreateCheckRequest
    tasks: _containers.RepeatedCompositeFieldContainer[PlannedTask]
    deadline: _timestamp_pb2.Timestamp
    client_ip: str
    created_by_key_id: str
    monitor_id: str
    monitor_run: int
    def __init__(self, check_id: _Optional[str] = ..., request: _Optional[_Union[_scheduler_pb2.CreateCheckRequest, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[PlannedTask, _Mapping]]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., client_ip: _Optional[str] = ..., created_by_key_id: _Optional[str] = ..., monitor_id: _Optional[str] = ..., monitor_run: _Optional[int] = ...) -> None: ...

class OpenCheckResponse(_message.Message):
    __slots__ = ("check",)
    CHECK_FIELD_NUMBER: _ClassVar[int]
    check: _checks_pb2.Check
    def __init__(self, check: _Optional[_Union[_checks_pb2.Check, _Mapping]] = ...) -> None: ...

class AgentResult(_message.Message):
    __slots__ = ("agent_id", "result")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    result: _scheduler_pb2.TaskResult
    def __init__(self, agent_id: _Optional[str] = ..., result: _Optional[_Union[_scheduler_pb2.TaskResult, _Mapping]] = ...) -> None: ...

class RecordResultsRequest(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AgentResult]
    def __init__(self, results: _Optional[_Iterable[_Union[AgentResult, _Mapping]]] = ...) -> None: ...

class RecordResultsResponse(_message.Message):
    __slots__ = ("stored_task_ids", "unknown_task_ids", "quarantined_task_ids", "rejected_task_ids")
    STORED_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    stored_task_ids: _containers.RepeatedScalarFieldContainer[str]
    unknown_task_ids: _containers.RepeatedScalarFieldContainer[str]
    quarantined_task_ids: _containers.RepeatedScalarFieldContainer[str]
    rejected_task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, stored_task_ids: _Optional[_Iterable[str]] = ..., unknown_task_ids: _Optional[_Iterable[str]] = ..., quarantined_task_ids: _Optional[_Iterable[str]] = ..., rejected_task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentProgress(_message.Message):
    __slots__ = ("agent_id", "progress")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    progress: _scheduler_pb2.TaskProgress
    def __init__(self, agent_id: _Optional[str] = ..., progress: _Optional[_Union[_scheduler_pb2.TaskProgress, _Mapping]] = ...) -> None: ...

class RecordProgressRequest(_message.Message):
    __slots__ = ("progress",)
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    progress: _containers.RepeatedCompositeFieldContainer[AgentProgress]
    def __init__(self, progress: _Optional[_Iterable[_Union[AgentProgress, _Mapping]]] = ...) -> None: ...

class RecordProgressResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAgentResultStatsRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class GetAgentResultStatsResponse(_message.Message):
    __slots__ = ("results_total", "results_succeeded", "tasks_timed_out", "by_type")
    RESULTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    TASKS_TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    BY_TYPE_FIELD_NUMBER: _ClassVar[int]
    results_total: int
    results_succeeded: int
    tasks_timed_out: int
    by_type: _containers.RepeatedCompositeFieldContainer[_registry_pb2.CheckTypeStats]
    def __init__(self, results_total: _Optional[int] = ..., results_succeeded: _Optional[int] = ..., tasks_timed_out: _Optional[int] = ..., by_type: _Optional[_Iterable[_Union[_registry_pb2.CheckTypeStats, _Mapping]]] = ...) -> None: ...
