"""The registry: agent identity (registration with the master token, hashed api tokens),
listing with live status, detail and stats."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, select, update

from hostcheck.core import limits
from hostcheck.core.checks import require_uuid
from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.core.config import RegistryConfig
from hostcheck.core.errors import (
    UNKNOWN_AGENT,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from hostcheck.core.metrics import MetricsServer, RegistryMetrics, serve_metrics
from hostcheck.core.rpc import channel
from hostcheck.core.timestamps import ts_or_none
from hostcheck.services.auth import RemoteVerifier, Verify, caller_of, require_admin
from hostcheck.services.grpcserver import Server, client_ip, start_server
from hostcheck.services.registry.models import AgentRow
from hostcheck.services.restbody import refuse_unknown_fields
from hostcheck.services.rpcerrors import grpc_errors
from hostcheck.services.storage import db
from hostcheck.services.storage.livestate import REVOCATIONS_CHANNEL, LiveState, Presence, create_live_state
from hostcheck.v1 import agents_pb2, registry_pb2, registry_pb2_grpc, results_pb2, results_pb2_grpc

log = logging.getLogger(__name__)

REGISTRATION_HEADER = "x-registration-token"
# The window of the per-IP registration limit (RegistryConfig.registration_rate_limit).
REGISTRATION_WINDOW_S = 3600
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def hash_token(token: str) -> str:
    # Tokens are 256-bit random: a plain digest is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def metadata_value(context, key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v
    return ""


def validate_registration(req: registry_pb2.RegisterAgentRequest) -> None:
    bad = limits.nul_violations(req)
    if not req.name.strip() or len(req.name) > 255:
        bad.append(FieldViolation("name", "must be 1-255 characters"))
    for name, limit in (("location", 255), ("region", 64), ("city", 128), ("version", 64)):
        if len(getattr(req, name)) > limit:
            bad.append(FieldViolation(name, f"must be at most {limit} characters"))
    if req.country and not _COUNTRY.match(req.country):
        bad.append(FieldViolation("country", "must be an ISO 3166 alpha-2 code, e.g. DE"))
    if len(req.labels) > 32:
        bad.append(FieldViolation("labels", "at most 32 labels"))
    for key, value in req.labels.items():
        if not key or len(key) > 63 or len(value) > 255:
            bad.append(FieldViolation(f"labels[{key[:40]}]", "key 1-63 and value 0-255 characters"))
    if req.HasField("latitude") != req.HasField("longitude"):
        bad.append(FieldViolation("latitude" if req.HasField("longitude") else "longitude",
                                  "give latitude and longitude together"))
    for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
        # `not -bound <= x` is also true for NaN.
        if req.HasField(name) and not -bound <= getattr(req, name) <= bound:
            bad.append(FieldViolation(name, f"must be decimal degrees from -{bound:g} to {bound:g}"))
    if bad:
        raise InvalidArgument(bad)


def known_capabilities(capabilities) -> list[str]:
    """The check types among an agent's capabilities that these services know, once each, in the agent's order.

    An agent upgraded before the services may offer a type they do not know yet: it is
    left out (never picked for it), not refused, so agents and services roll out in any order.
    """
    return list(dict.fromkeys(c for c in capabilities if c in CHECK_TYPES))


# Where a record notes the agent that replaced it (metadata), and the label that names an agent's node.
REPLACED_BY = "replaced_by"
NODE_LABEL = "hostcheck.io/node"


def agent_view(row: AgentRow, presence: Presence | None) -> agents_pb2.Agent:
    if row.revoked_at:
        status = "replaced" if (row.metadata_ or {}).get(REPLACED_BY) else "revoked"
    else:
        status = "online" if presence else "offline"
    last = datetime.fromtimestamp(presence.last_heartbeat, UTC) if presence else row.last_heartbeat
    return agents_pb2.Agent(
        agent_id=str(row.id), name=row.name, location=row.location, region=row.region, country=row.country,
        city=row.city, asn=row.asn, labels={k: str(v) for k, v in (row.labels or {}).items()},
        capabilities=known_capabilities(presence.capabilities if presence and presence.capabilities
                                        else row.capabilities or []),
        version=presence.version if presence and presence.version else row.version, status=status,
        last_heartbeat=ts_or_none(last), tasks_in_flight=presence.tasks_in_flight if presence else 0,
        registered_at=ts_or_none(row.registered_at), latitude=row.latitude, longitude=row.longitude)


class RegistryStore:
    def __init__(self, sessions) -> None:
        self.sessions = sessions

    async def add(self, row: AgentRow) -> None:
        async with self.sessions() as session, session.begin():
            session.add(row)

    async def get(self, agent_id: uuid.UUID) -> AgentRow:
        async with self.sessions() as session:
            row = await session.get(AgentRow, agent_id)
        if row is None:
            raise NotFound(f"agent {agent_id} not found")
        return row

    async def all(self, *, region: str = "", country: str = "") -> list[AgentRow]:
        stmt = select(AgentRow).order_by(AgentRow.name, AgentRow.id)
        if region:
            stmt = stmt.where(AgentRow.region == region)
        if country:
            stmt = stmt.where(AgentRow.country == country)
        async with self.sessions() as session:
            return list((await session.scalars(stmt)).all())

    async def check_health(self) -> None:
        async with self.sessions() as session:
            await session.execute(select(1))

    async def replace_on_node(self, row: AgentRow) -> list[uuid.UUID]:
        """Adds `row` and marks every other live agent of its node (same name and NODE_LABEL)
        replaced by it: revoked, with REPLACED_BY noting the new one. Returns the replaced ids."""
        node = (row.labels or {}).get(NODE_LABEL)
        replaced = []
        async with self.sessions() as session, session.begin():
            if node:
                candidates = await session.scalars(select(AgentRow).where(
                    AgentRow.name == row.name, AgentRow.revoked_at.is_(None)))
                now = datetime.now(UTC)
                for old in candidates:
                    if (old.labels or {}).get(NODE_LABEL) == node:
                        old.revoked_at = now
                        old.metadata_ = {**(old.metadata_ or {}), REPLACED_BY: str(row.id)}
                        replaced.append(old.id)
            session.add(row)
        return replaced

    async def revoke(self, agent_id: uuid.UUID) -> AgentRow:
        async with self.sessions() as session, session.begin():
            row = await session.get(AgentRow, agent_id)
            if row is None:
                raise NotFound(f"agent {agent_id} not found")
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
        return row

    async def delete(self, agent_id: uuid.UUID) -> None:
        async with self.sessions() as session, session.begin():
            if (await session.execute(delete(AgentRow).where(AgentRow.id == agent_id))).rowcount == 0:
                raise NotFound(f"agent {agent_id} not found")

    async def touch(self, agent_id: uuid.UUID) -> None:
        """Records when the agent last proved its token (its live heartbeats go to live state only)."""
        async with self.sessions() as session, session.begin():
            await session.execute(update(AgentRow).where(AgentRow.id == agent_id)
                                  .values(last_heartbeat=datetime.now(UTC)))


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, store: RegistryStore, live: LiveState, results: results_pb2_grpc.ResultsIngestServiceStub,
                 registration_token: str, metrics: RegistryMetrics | None = None, *, verify: Verify,
                 registration_rate_limit: int = 0) -> None:
        self.store = store
        self.live = live
        self.results = results
        self.registration_token = registration_token
        self.metrics = metrics or RegistryMetrics()
        self.verify = verify
        self.registration_rate_limit = registration_rate_limit

    async def _require_registration_token(self, context) -> None:
        """The registration token, presented at most `registration_rate_limit` times an hour per client IP
        (wrong tokens count too, so the token cannot be guessed at speed)."""
        if self.registration_rate_limit:
            ip = client_ip(context)
            allowed, retry = await self.live.hit_rate_limit(f"registrations:{ip}", self.registration_rate_limit,
                                                            REGISTRATION_WINDOW_S)
            if not allowed:
                raise ResourceExhausted(f"rate limit of {self.registration_rate_limit} registrations per "
                                        f"{REGISTRATION_WINDOW_S} s for {ip} reached", retry_after_s=retry)
        presented = metadata_value(context, REGISTRATION_HEADER)
        if not self.registration_token:
            raise PermissionDenied("registration is disabled: the registry has no registration token set")
        if not presented:
            raise Unauthenticated(f"registration needs the {REGISTRATION_HEADER} header")
        if not hmac.compare_digest(presented.encode(), self.registration_token.encode()):
            raise Unauthenticated("wrong registration token")

    @grpc_errors
    async def RegisterAgent(self, request, context):
        await self._require_registration_token(context)
        refuse_unknown_fields(registry_pb2.RegisterAgentRequest, context.invocation_metadata())
        validate_registration(request)
        token = secrets.token_urlsafe(32)
        row = AgentRow(id=uuid.uuid4(), name=request.name.strip(), location=request.location,
                       region=request.region, country=request.country, city=request.city, asn=request.asn,
                       latitude=request.latitude if request.HasField("latitude") else None,
                       longitude=request.longitude if request.HasField("longitude") else None,
                       labels=dict(request.labels), capabilities=known_capabilities(request.capabilities),
                       version=request.version, api_token_hash=hash_token(token), metadata_={})
        # One agent per node: a node's new registration (a replaced node, a crash-looping pod that
        # could not keep its state file, an identity lost to a database restore) replaces the old.
        replaced = await self.store.replace_on_node(row)
        for old in replaced:
            await self.live.publish(REVOCATIONS_CHANNEL, str(old).encode())
            log.info("agent %s replaced by %s on node %s", old, row.id, row.name)
        self.metrics.registrations.inc()
        log.info("registered agent %s (%s)", row.id, row.name)
        return registry_pb2.RegisterAgentResponse(agent_id=str(row.id), api_token=token)

    @grpc_errors
    async def RevokeAgent(self, request, context):
        agent_id = require_uuid("agent_id", request.agent_id)
        require_admin(await caller_of(context, self.verify), "revoking an agent")
        row = await self.store.revoke(agent_id)
        await self.live.publish(REVOCATIONS_CHANNEL, str(agent_id).encode())
        log.info("revoked agent %s (%s)", row.id, row.name)
        return registry_pb2.RevokeAgentResponse(agent=agent_view(row, None))

    @grpc_errors
    async def DeleteAgent(self, request, context):
        agent_id = require_uuid("agent_id", request.agent_id)
        require_admin(await caller_of(context, self.verify), "deleting an agent")
        # Revoked first, so the stream closes even if the delete fails; its results keep their own
        # snapshot of the agent (check_tasks), so they stay readable without the record.
        await self.store.revoke(agent_id)
        await self.live.publish(REVOCATIONS_CHANNEL, str(agent_id).encode())
        await self.store.delete(agent_id)
        log.info("deleted agent %s", agent_id)
        return registry_pb2.DeleteAgentResponse(agent_id=str(agent_id))

    @grpc_errors
    async def ListAgents(self, request, context):
        if request.status not in ("", "online", "offline", "revoked", "replaced"):
            raise InvalidArgument(field="status", reason="must be online, offline, revoked or replaced")
        rows = await self.store.all(region=request.region, country=request.country)
        presence = await self.live.get_presence([str(r.id) for r in rows])
        agents = [agent_view(r, presence.get(str(r.id))) for r in rows]
        online = sum(1 for a in agents if a.status == "online")
        if request.status:
            agents = [a for a in agents if a.status == request.status]
        return registry_pb2.ListAgentsResponse(agents=agents, online=online, total=len(rows))

    async def _agent(self, agent_id: str) -> agents_pb2.Agent:
        row = await self.store.get(require_uuid("agent_id", agent_id))
        presence = await self.live.get_presence([str(row.id)])
        return agent_view(row, presence.get(str(row.id)))

    @grpc_errors
    async def GetAgent(self, request, context):
        return registry_pb2.GetAgentResponse(agent=await self._agent(request.agent_id))

    @grpc_errors
    async def ReadAgent(self, request, context):
        return await self._agent(request.agent_id)

    @grpc_errors
    async def GetAgentStats(self, request, context):
        agent = await self._agent(request.agent_id)
        stats = await self.results.GetAgentResultStats(
            results_pb2.GetAgentResultStatsRequest(agent_id=agent.agent_id), timeout=10)
        return registry_pb2.GetAgentStatsResponse(
            agent=agent, results_total=stats.results_total, results_succeeded=stats.results_succeeded,
            tasks_timed_out=stats.tasks_timed_out, by_type=stats.by_type)

    @grpc_errors
    async def GetHealth(self, request, context):
        database, live = await asyncio.gather(_probe(self.store.check_health()), _probe(self.live.check_health()))
        active = 0
        if live == "ok":
            try:
                active = len(await asyncio.wait_for(self.live.online_agents(), HEALTH_TIMEOUT_S))
            except Exception as exc:  # noqa: BLE001 - reported in the body, not raised
                live = _failure(exc)
        ok = database == "ok" and live == "ok"
        # `redis` (the seed's name) reports Redis only: the embedded default has none.
        return registry_pb2.GetHealthResponse(status="ok" if ok else "degraded", database=database,
                                              redis=live if self.live.kind == "redis" else REDIS_NOT_USED,
                                              live_state=live, live_state_kind=self.live.kind, active_agents=active)


HEALTH_TIMEOUT_S = 2.0
REDIS_NOT_USED = "not used (live state in memory)"


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__


async def _probe(call) -> str:
    """"ok", or why a dependency did not answer within HEALTH_TIMEOUT_S."""
    try:
        await asyncio.wait_for(call, HEALTH_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - health reports failures instead of raising them
        log.warning("health: %s", _failure(exc))
        return _failure(exc)
    return "ok"


class AgentAuthServicer(registry_pb2_grpc.AgentAuthServiceServicer):
    def __init__(self, store: RegistryStore) -> None:
        self.store = store

    @grpc_errors
    async def VerifyAgentToken(self, request, context):
        try:
            agent_id = uuid.UUID(request.agent_id)
            row = await self.store.get(agent_id)
        except (ValueError, NotFound):
            # Said plainly (ids are random, nothing to enumerate): the agent may register afresh.
            raise Unauthenticated(UNKNOWN_AGENT) from None
        if not hmac.compare_digest(row.api_token_hash, hash_token(request.api_token)):
            raise Unauthenticated("unknown agent or wrong token")
        if row.revoked_at is not None:
            raise Unauthenticated(f"agent {agent_id} was revoked")
        await self.store.touch(agent_id)
        return registry_pb2.VerifyAgentTokenResponse(agent=agent_view(row, None))


class RegistryService:
    def __init__(self, server: Server, engine, results_channel, live: LiveState, owns_live: bool,
                 metrics_server: MetricsServer | None = None) -> None:
        self.server = server
        self.metrics_server = metrics_server
        self.engine = engine
        self.results_channel = results_channel
        self.live = live
        self.owns_live = owns_live

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        await self.server.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await self.results_channel.close()
        await self.engine.dispose()
        if self.owns_live:
            await self.live.close()


async def start(config: RegistryConfig, *, live: LiveState | None = None) -> RegistryService:
    if not config.registration_token:
        log.warning("HOSTCHECK_REGISTRATION_TOKEN is not set: agents cannot register")
    if config.migrate:
        await asyncio.to_thread(db.migrate, config.database_url)
    engine = db.create_engine(config.database_url)
    store = RegistryStore(db.sessionmaker(engine))
    owns_live = live is None
    live = live or create_live_state(config.live_state_url, config.live_state_prefix)
    results_channel = channel(config.results_addr)
    metrics = RegistryMetrics()
    server = await start_server(config.listen, [
        (registry_pb2_grpc.add_RegistryServiceServicer_to_server,
         RegistryServicer(store, live, results_pb2_grpc.ResultsIngestServiceStub(results_channel),
                          config.registration_token, metrics, verify=RemoteVerifier(results_channel),
                          registration_rate_limit=config.registration_rate_limit)),
        (registry_pb2_grpc.add_AgentAuthServiceServicer_to_server, AgentAuthServicer(store)),
    ], [registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name,
        registry_pb2.DESCRIPTOR.services_by_name["AgentAuthService"].full_name], tls=config,
        trusted_hops=config.trusted_hops, serving=config.migrate)
    if not config.migrate:  # someone else migrates (an init container): not ready before they did
        await server.serve_when(lambda: db.schema_at_head(engine), "the database schema is at head")
    metrics_server = await serve_metrics(metrics.registry, config.metrics_port, near=config.listen)
    return RegistryService(server, engine, results_channel, live, owns_live, metrics_server)
