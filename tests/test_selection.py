"""Choosing agents (issue 18): every selector filter, per-location limits, same_as and spreading,
first as pure functions over presences, then through the whole system (real agents registered in
other countries and ASNs, the real scheduler and results services, Envoy's REST and gRPC)."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter

import grpc
import httpx
import pytest
from google.protobuf import unknown_fields

from hostcheck.core.checks import validate_create
from hostcheck.core.errors import FailedPrecondition, InvalidArgument
from hostcheck.core.geo import CONTINENT_NAMES, CONTINENT_OF_COUNTRY, continent_of
from hostcheck.core.selectors import location_limits
from hostcheck.core.targets import TargetGuard
from hostcheck.services.scheduler.selection import pick_agents
from hostcheck.services.storage.livestate import Presence
from hostcheck.v1 import checks_pb2, registry_pb2, scheduler_pb2, scheduler_pb2_grpc
from tests.conftest import System
from tests.gateway.conftest import start_gateway
from tests.helpers import assert_eventually

GUARD = TargetGuard.from_cidrs(("127.0.0.0/8",))

# The fleet every test here picks from: name -> (country, city, region, asn, labels).
FLEET = {
    "de-ber": ("DE", "Berlin", "eu-central", 3320, {"network": "Deutsche Telekom", "tier": "gold"}),
    "de-fra": ("DE", "Frankfurt", "eu-central", 3320, {"network": "Deutsche Telekom"}),
    "fr-par": ("FR", "Paris", "eu-west", 12322, {"network": "Free SAS"}),
    "us-nyc": ("US", "New York", "us-east", 7922, {"network": "Comcast"}),
    "us-sea": ("US", "Seattle", "us-west", 7922, {"network": "Comcast", "tier": "gold"}),
    "jp-tyo": ("JP", "Tokyo", "ap-northeast", 2516, {"network": "KDDI"}),
}


def presences(**loads: int) -> list[Presence]:
    return [Presence(agent_id=name, scheduler_id="s-1", last_heartbeat=time.time(), name=name, country=country,
                     city=city, region=region, asn=asn, labels=dict(labels), tasks_in_flight=loads.get(name, 0),
                     capabilities=["tcp"])
            for name, (country, city, region, asn, labels) in FLEET.items()]


def pick(rng_seed: int = 0, same_as=None, online=None, **selector) -> list[str]:
    sel = checks_pb2.AgentSelector(**selector)
    picked = pick_agents(online or presences(), sel, ["tcp"], rng=random.Random(rng_seed), same_as=same_as)
    return sorted(p.agent_id for p, _ in picked)


# --- which agents each filter picks (pure) ----------------------------------------------------------------------

def test_countries_asns_continents_networks_and_labels_pick_exactly_their_agents():
    assert pick(countries=["de"]) == ["de-ber", "de-fra"]
    assert pick(asns=[7922, 2516]) == ["jp-tyo", "us-nyc", "us-sea"]
    assert pick(continents=["EU"]) == ["de-ber", "de-fra", "fr-par"]
    assert pick(continents=["na", "AS"]) == ["jp-tyo", "us-nyc", "us-sea"]
    assert pick(networks=["comcast"]) == ["us-nyc", "us-sea"]
    assert pick(labels={"tier": "gold"}) == ["de-ber", "us-sea"]
    assert pick(continents=["EU"], exclude_labels={"tier": "gold"}) == ["de-fra", "fr-par"]
    # Filters combine: all must match.
    assert pick(continents=["EU"], asns=[3320], cities=["frankfurt"]) == ["de-fra"]


def test_magic_matches_every_kind_of_place_and_plus_joins_filters():
    assert pick(magic=["Germany"]) == ["de-ber", "de-fra"]
    assert pick(magic=["europe"]) == ["de-ber", "de-fra", "fr-par"]
    assert pick(magic=["AS7922"]) == ["us-nyc", "us-sea"]
    assert pick(magic=["frankfurt"]) == ["de-fra"]
    assert pick(magic=["us-west"]) == ["us-sea"]
    assert pick(magic=["KDDI"]) == ["jp-tyo"]  # a label value (the network)
    assert pick(magic=["JP"]) == ["jp-tyo"]
    assert pick(magic=["United States of America"]) == ["us-nyc", "us-sea"]
    assert pick(magic=["FR+AS12322"]) == ["fr-par"]
    assert pick(magic=["DE + gold"]) == ["de-ber"]
    # Items are alternatives.
    assert pick(magic=["Japan", "Paris"]) == ["fr-par", "jp-tyo"]
    with pytest.raises(FailedPrecondition, match="magic=FR\\+AS3320"):
        pick(magic=["FR+AS3320"])


def test_each_location_has_its_own_limit_and_an_agent_is_picked_once():
    got = pick(locations=[checks_pb2.AgentLocation(continents=["EU"], limit=2),
                          checks_pb2.AgentLocation(countries=["US"], limit=1),
                          checks_pb2.AgentLocation(magic=["Japan"], limit=5)])
    assert Counter(a[:2] for a in got) == {"de": 1, "fr": 1, "us": 1, "jp": 1}  # EU's 2 spread over DE and FR
    # A location with no limit shares the global one; overlapping locations never pick an agent twice.
    got = pick(limit=4, locations=[checks_pb2.AgentLocation(continents=["EU"]),
                                   checks_pb2.AgentLocation(countries=["DE"])])
    assert len(got) == 3 and len(set(got)) == 3 and set(got) == {"de-ber", "de-fra", "fr-par"}
    # The global limit caps the total.
    assert len(pick(limit=2, locations=[checks_pb2.AgentLocation(continents=["EU"], limit=3),
                                        checks_pb2.AgentLocation(countries=["US"], limit=2)])) == 2
    sel = checks_pb2.AgentSelector(limit=5, locations=[checks_pb2.AgentLocation(), checks_pb2.AgentLocation(limit=7),
                                                       checks_pb2.AgentLocation()])
    assert location_limits(sel) == [3, 7, 2]


def test_spread_over_countries_then_cities_least_loaded_first():
    # Two in Germany, one in France: a limit of 2 takes one of each, not the two idle German agents.
    assert pick(continents=["EU"], limit=2, online=presences(**{"fr-par": 5})) in (["de-ber", "fr-par"],
                                                                                  ["de-fra", "fr-par"])
    for seed in range(20):
        assert pick(seed, continents=["EU"], limit=2, online=presences(**{"de-ber": 3})) == ["de-fra", "fr-par"]
        # Within one place, the least loaded.
        assert pick(seed, countries=["US"], limit=1, online=presences(**{"us-nyc": 1})) == ["us-sea"]


def test_same_as_picks_the_online_agents_of_the_earlier_check():
    assert pick(same_as={"de-ber", "jp-tyo", "gone"}) == ["de-ber", "jp-tyo"]
    assert pick(same_as={"de-ber", "jp-tyo"}, continents=["AS"]) == ["jp-tyo"]
    with pytest.raises(FailedPrecondition, match="none of the 1 agent"):
        pick(same_as={"gone"})


# --- validation ---------------------------------------------------------------------------------------------------

def violations(**selector) -> dict[str, str]:
    request = scheduler_pb2.CreateCheckRequest(target="127.0.0.1:9", checks=["tcp"],
                                               agents=checks_pb2.AgentSelector(**selector))
    with pytest.raises(InvalidArgument) as refused:
        validate_create(request, GUARD)
    return {v.field: v.reason for v in refused.value.violations}


def test_bad_selectors_are_refused_naming_the_field():
    assert "unknown continent 'XX'" in violations(continents=["EU", "XX"])["agents.continents[1]"]
    assert violations(asns=[0])["agents.asns[0]"] == "must be 1-4294967295"
    assert "empty filter" in violations(magic=["FR+"])["agents.magic[0]"]
    assert "not a check id" in violations(same_as="nope")["agents.same_as"]
    assert "not both" in violations(same_as=str(uuid.uuid4()), agent_ids=[str(uuid.uuid4())])["agents.same_as"]
    assert violations(locations=[checks_pb2.AgentLocation(limit=1001)])["agents.locations[0].limit"] == "must be 1-1000"
    assert "add up to 1200" in violations(locations=[checks_pb2.AgentLocation(limit=600),
                                                     checks_pb2.AgentLocation(limit=600)])["agents.locations"]
    assert "unknown continent" in violations(
        locations=[checks_pb2.AgentLocation(continents=["Atlantis"])])["agents.locations[0].continents[0]"]
    # The magic of a location, and a field an older server does not know (a gRPC client's newer proto).
    sel = checks_pb2.AgentSelector(limit=2)
    sel.MergeFromString(bytes([0x98, 0x06, 0x01]))  # field 99, varint 1
    assert unknown_fields.UnknownFieldSet(sel)
    request = scheduler_pb2.CreateCheckRequest(target="127.0.0.1:9", checks=["tcp"], agents=sel)
    with pytest.raises(InvalidArgument, match="unknown field number 99"):
        validate_create(request, GUARD)


def test_every_iso_country_has_a_continent():
    import pycountry

    assert {c.alpha_2 for c in pycountry.countries} <= set(CONTINENT_OF_COUNTRY)
    assert set(CONTINENT_OF_COUNTRY.values()) == set(CONTINENT_NAMES)
    assert (continent_of("de"), continent_of("BR"), continent_of("au"), continent_of("ZA")) == ("EU", "SA", "OC", "AF")
    assert continent_of("") == continent_of("ZZ") == ""


# --- through the whole system: REST and gRPC through Envoy ---------------------------------------------------------

@pytest.fixture(scope="module")
async def fleet_stack(tmp_path_factory):
    """The services (SQLite + memory) with the FLEET as real agents, and Envoy in front; stopped after this module."""
    workdir = tmp_path_factory.mktemp("selection")
    system = System(f"sqlite:///{workdir / 'hostcheck.db'}", "memory://", "unused:")
    gw = None
    try:
        await system.start()
        ids = {}
        for name, (country, city, region, asn, labels) in FLEET.items():
            agent = await system.start_agent(workdir, name, country=country, city=city, region=region, asn=asn,
                                             labels=tuple(f"{k}={v}" for k, v in labels.items()))
            ids[name] = agent.identity.agent_id

        async def all_online() -> bool:
            reply = await system.agents_api.ListAgents(registry_pb2.ListAgentsRequest(status="online"))
            return {a.agent_id for a in reply.agents} >= set(ids.values())
        await assert_eventually(all_online, timeout=15, message="the fleet online")
        gw = await start_gateway(system, workdir)
        yield system, gw, {v: k for k, v in ids.items()}
    finally:
        if gw is not None:
            gw.proc.stop()
        await system.stop()


SELECTIONS = [
    ({"countries": ["DE"]}, {"de-ber", "de-fra"}),
    ({"asns": [7922, 2516]}, {"us-nyc", "us-sea", "jp-tyo"}),
    ({"continents": ["EU"]}, {"de-ber", "de-fra", "fr-par"}),
    ({"magic": ["FR+AS12322", "Japan"]}, {"fr-par", "jp-tyo"}),
    ({"networks": ["Comcast"], "exclude_labels": {"tier": "gold"}}, {"us-nyc"}),
]


@pytest.mark.parametrize("via", ["rest", "grpc"])
async def test_selectors_choose_exactly_the_expected_agents(fleet_stack, tcp_target, via):
    system, gw, names = fleet_stack
    target = f"127.0.0.1:{tcp_target}"

    async with httpx.AsyncClient(base_url=gw.url, timeout=15) as rest, grpc.aio.insecure_channel(gw.addr) as ch:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(ch)

        async def create(agents: dict) -> tuple[list[str], str]:
            if via == "rest":
                reply = await rest.post("/api/checks", json={"target": target, "checks": ["tcp"], "agents": agents})
                assert reply.status_code == 200, reply.text
                check = reply.json()["check"]
                return [names[t["agent_id"]] for t in check["tasks"]], check["check_id"]
            from google.protobuf import json_format
            sel = json_format.ParseDict(agents, checks_pb2.AgentSelector())
            reply = await stub.CreateCheck(scheduler_pb2.CreateCheckRequest(target=target, checks=["tcp"],
                                                                            agents=sel))
            return [names[t.agent_id] for t in reply.check.tasks], reply.check_id

        for agents, expected in SELECTIONS:
            got, _ = await create(agents)
            assert sorted(got) == sorted(expected), agents

        # Per-location limits: 2 of Europe (one per country), 1 of the US, Japan's one.
        got, earlier = await create({"locations": [{"continents": ["EU"], "limit": 2},
                                                   {"countries": ["US"], "limit": 1}, {"magic": ["AS2516"]}]})
        assert Counter(n[:2] for n in got) == {"de": 1, "fr": 1, "us": 1, "jp": 1}
        # same_as: the agents of that check again, whatever is online besides.
        again, _ = await create({"same_as": earlier})
        assert sorted(again) == sorted(got)
        got3, _ = await create({"same_as": earlier, "continents": ["EU"]})
        assert sorted(got3) == sorted(n for n in got if n[:2] in ("de", "fr"))


async def test_bad_and_unknown_selector_fields_are_refused(fleet_stack):
    system, gw, _ = fleet_stack
    async with httpx.AsyncClient(base_url=gw.url, timeout=15) as rest, grpc.aio.insecure_channel(gw.addr) as ch:
        for agents, field in [({"contry": ["DE"]}, "agents.contry"),
                              ({"locations": [{"countries": ["DE"], "limt": 1}]}, "agents.locations.limt"),
                              ({"continents": ["Europa"]}, "agents.continents[0]"),
                              ({"same_as": str(uuid.uuid4())}, None)]:
            reply = await rest.post("/api/checks", json={"target": "127.0.0.1:9", "checks": ["tcp"], "agents": agents})
            if field is None:  # an unknown earlier check
                assert reply.status_code == 404, reply.text
                assert "agents.same_as" in reply.json()["message"]
                continue
            assert reply.status_code == 400, reply.text
            assert field in reply.text
        stub = scheduler_pb2_grpc.SchedulerServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateCheck(scheduler_pb2.CreateCheckRequest(
                target="127.0.0.1:9", checks=["tcp"], agents=checks_pb2.AgentSelector(continents=["Europa"])))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "continent" in refused.value.details()
        # Nothing matches: FAILED_PRECONDITION naming what was asked, never a check on every agent.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateCheck(scheduler_pb2.CreateCheckRequest(
                target="127.0.0.1:9", checks=["tcp"], agents=checks_pb2.AgentSelector(asns=[64512])))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "asns=64512" in refused.value.details()


async def test_cli_from_and_limit_choose_agents(fleet_stack, tcp_target, capsys):
    """`hostcheck check TARGET -t tcp --from Germany --from AS7922 --limit 3 --json`."""
    import json

    from hostcheck.cli import check as checkcli
    system, gw, names = fleet_stack
    code = await checkcli.run(target=f"127.0.0.1:{tcp_target}", types=["tcp"], server=gw.addr, as_json=True, limit=3,
                              regions=(), countries=(), agent_ids=(), port=0, timeout_ms=0, options=(),
                              magic=("Germany", "AS7922"))
    out, err = capsys.readouterr()
    assert code == checkcli.EXIT_ALL_SUCCEEDED, out + err
    picked = [names[t["agent_id"]] for t in json.loads(out)["tasks"]]
    # 3 of DE's 2 and AS7922's 2 (US), spread over the two countries.
    assert len(picked) == 3 and {n[:2] for n in picked} == {"de", "us"}
    code = await checkcli.run(target=f"127.0.0.1:{tcp_target}", types=["tcp"], server=gw.addr, as_json=True, limit=0,
                              regions=(), countries=(), agent_ids=(), port=0, timeout_ms=0, options=(),
                              magic=("Atlantis",))
    assert code == checkcli.EXIT_REFUSED and "magic=Atlantis" in capsys.readouterr().err
