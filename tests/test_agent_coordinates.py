"""Agents' latitude and longitude (for the UI's map): the agent's settings, the registry's validation,
storage (migration 0005) and ListAgents."""

from __future__ import annotations

import math

import grpc
import pytest
import sqlalchemy as sa

from hostcheck.agent.identity import IdentityError, coordinates
from hostcheck.core.config import AgentConfig
from hostcheck.core.errors import InvalidArgument
from hostcheck.services.registry.service import validate_registration
from hostcheck.v1 import registry_pb2
from tests.test_migrations import alembic, connected


@pytest.mark.parametrize(("latitude", "longitude", "expected"), [
    ("50.1109", "8.6821", {"latitude": 50.1109, "longitude": 8.6821}),
    ("-90", "180", {"latitude": -90.0, "longitude": 180.0}),
    ("0", "0", {"latitude": 0.0, "longitude": 0.0}),  # the Gulf of Guinea is a place, not "unknown"
    ("", "", {}),
])
def test_agent_settings_give_coordinates(latitude, longitude, expected):
    assert coordinates(AgentConfig(latitude=latitude, longitude=longitude)) == expected


@pytest.mark.parametrize(("latitude", "longitude", "message"), [
    ("50.1", "", "HOSTCHECK_LATITUDE and HOSTCHECK_LONGITUDE go together"),
    ("", "8.6", "HOSTCHECK_LATITUDE and HOSTCHECK_LONGITUDE go together"),
    ("91", "0", "HOSTCHECK_LATITUDE='91': expected decimal degrees from -90 to 90"),
    ("0", "-180.5", "HOSTCHECK_LONGITUDE='-180.5': expected decimal degrees from -180 to 180"),
    ("north", "0", "HOSTCHECK_LATITUDE='north': expected decimal degrees"),
    ("nan", "0", "HOSTCHECK_LATITUDE='nan': expected decimal degrees"),
])
def test_agent_settings_refuse_bad_coordinates(latitude, longitude, message):
    with pytest.raises(IdentityError) as err:
        coordinates(AgentConfig(latitude=latitude, longitude=longitude))
    assert message in str(err.value)


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"latitude": 10.0}, "longitude", "give latitude and longitude together"),
    ({"longitude": 10.0}, "latitude", "give latitude and longitude together"),
    ({"latitude": 90.5, "longitude": 0.0}, "latitude", "must be decimal degrees from -90 to 90"),
    ({"latitude": 0.0, "longitude": -181.0}, "longitude", "must be decimal degrees from -180 to 180"),
    ({"latitude": math.nan, "longitude": 0.0}, "latitude", "must be decimal degrees from -90 to 90"),
    ({"latitude": 0.0, "longitude": math.inf}, "longitude", "must be decimal degrees from -180 to 180"),
])
def test_registration_refuses_bad_coordinates(fields, field, reason):
    with pytest.raises(InvalidArgument) as err:
        validate_registration(registry_pb2.RegisterAgentRequest(name="a", **fields))
    assert [(v.field, v.reason) for v in err.value.violations] == [(field, reason)]


async def test_registered_coordinates_are_listed(system, tmp_path):
    await system.start_agent(tmp_path, "placed", latitude="35.6762", longitude="139.6503")
    await system.start_agent(tmp_path, "unplaced")
    listed = {a.name: a for a in (await system.agents_api.ListAgents(registry_pb2.ListAgentsRequest())).agents}
    assert (listed["placed"].latitude, listed["placed"].longitude) == (35.6762, 139.6503)
    assert not listed["unplaced"].HasField("latitude") and not listed["unplaced"].HasField("longitude")


async def test_registry_answers_bad_coordinates_with_invalid_argument(system):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.register("bad", latitude=-95.0, longitude=0.0)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "latitude" in err.value.details()


def test_migration_0005_adds_and_drops_the_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"

    def columns() -> set[str]:
        with connected(url) as conn:
            return {c["name"] for c in sa.inspect(conn).get_columns("agents")}
    alembic(url, "upgrade", "0005")
    assert {"latitude", "longitude"} <= columns()
    alembic(url, "downgrade", "0004")
    assert not {"latitude", "longitude"} & columns()
