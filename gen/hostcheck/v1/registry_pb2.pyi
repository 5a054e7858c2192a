from google.api import annotations_pb2 as _annotations_pb2
from hostcheck.v1 import agents_pb2 as _agents_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterAgentRequest(_message.Message):
    __slots__ = ("name", "location", "region", "country", "city", "asn", "labels", "capabilities", "version", "latitude", "longitude")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    ASN_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    name: str
    location: str
    region: str
    country: str
    city: str
    asn: int
    labels: _containers.ScalarMap[str, str]
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    version: str
    latitude: float
    longitude: float
    def __init__(self, name: _Optional[str] = ..., location: _Optional[str] = ..., region: _Optional[str] = ..., country: _Optional[str] = ..., city: _Optional[str] = ..., asn: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., capabilities: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ...) -> None: ...

class RegisterAgentResponse(_message.Message):
    __slots__ = ("agent_id", "api_token")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    API_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    api_token: str
    def __init__(self, agent_id: _Optional[str] = ..., api_token: _Optional[str] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("status", "region", "country")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    status: str
    region: str
    country: str
    def __init__(self, status: _Optional[str] = ..., region: _Optional[str] = ..., country: _Optional[str] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents", "online", "total")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[_agents_pb2.Agent]
    online: int
    total: int
    def __init__(self, agents: _Optional[_Iterable[_Union[_agents_pb2.Agent, _Mapping]]] = ..., online: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class GetAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class GetAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: _agents_pb2.Agent
    def __init__(self, agent: _Optional[_Union[_agents_pb2.Agent, _Mapping]] = ...) -> None: ...

class ReadAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class GetAgentStatsRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class CheckTypeStats(_message.Message):
    __slots__ = ("check_type", "total", "succeeded", "failed", "avg_duration_ms")
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    AVG_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    check_type: str
    total: int
    succeeded: int
    failed: int
    avg_duration_ms: float
    def __init__(self, check_type: _Optional[str] = ..., total: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., avg_duration_ms: _Optional[float] = ...) -> None: ...

class GetAgentStatsResponse(_message.Message):
    __slots__ = ("agent", "results_total", "results_succeeded", "tasks_timed_out", "by_type")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    TASKS_TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    BY_TYPE_FIELD_NUMBER: _ClassVar[int]
    agent: _agents_pb2.Agent
    results_total: int
    results_succeeded: int
    tasks_timed_out: int
    by_type: _containers.RepeatedCompositeFieldContainer[CheckTypeStats]
    def __init__(self, agent: _Optional[_Union[_agents_pb2.Agent, _Mapping]] = ..., results_total: _Optional[int] = ..., results_succeeded: _Optional[int] = ..., tasks_timed_out: _Optional[int] = ..., by_type: _Optional[_Iterable[_Union[CheckTypeStats, _Mapping]]] = ...) -> None: ...

class GetHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHealthResponse(_message.Message):
    __slots__ = ("status", "database", "redis", "active_agents", "live_state", "live_state_kind")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    REDIS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_AGENTS_FIELD_NUMBER: _ClassVar[int]
    LIVE_STATE_FIELD_NUMBER: _ClassVar[int]
    LIVE_STATE_KIND_FIELD_NUMBER: _ClassVar[int]
    status: str
    database: str
    redis: str
    active_agents: int
    live_state: str
    live_state_kind: str
    def __init__(self, status: _Optional[str] = ..., database: _Optional[str] = ..., redis: _Optional[str] = ..., active_agents: _Optional[int] = ..., live_state: _Optional[str] = ..., live_state_kind: _Optional[str] = ...) -> None: ...

class RevokeAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class RevokeAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: _agents_pb2.Agent
    def __init__(self, agent: _Optional[_Union[_agents_pb2.Agent, _Mapping]] = ...) -> None: ...

class DeleteAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class DeleteAgentResponse(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class VerifyAgentTokenRequest(_message.Message):
    __slots__ = ("agent_id", "api_token")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    API_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    api_token: str
    def __init__(self, agent_id: _Optional[str] = ..., api_token: _Optional[str] = ...) -> None: ...

class VerifyAgentTokenResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: _agents_pb2.Agent
    def __init__(self, agent: _Optional[_Union[_agents_pb2.Agent, _Mapping]] = ...) -> None: ...
