"""The world map: `hostcheck dev --agents 3` puts its agents at simulated places; /agents shows them on
the map, and a check's results page marks each agent there in its outcome's colour."""

from __future__ import annotations

import grpc
from playwright.async_api import Page, expect

from hostcheck.cli.dev import DEMO_LOCATIONS
from hostcheck.v1 import scheduler_pb2, scheduler_pb2_grpc
from tests.helpers import free_port
from tests.ui.conftest import save_screenshot

DEV_AGENTS = 3  # read by the dev fixture
PLACES = DEMO_LOCATIONS[:DEV_AGENTS]


async def _points(page: Page) -> dict[str, dict]:
    """Each map point by its tooltip's agent name: outcome, position on the map (relative to the map,
    so what the page shows above it, e.g. a results table whose rows wrap, does not move it) and circle
    colour."""
    return await page.get_by_test_id("map-point").evaluate_all("""points => Object.fromEntries(points.map(p => {
        const box = p.getBoundingClientRect();
        const map = p.closest('[data-testid="world-map"]').getBoundingClientRect();
        return [p.querySelector("title").textContent.split(":")[0], {
            outcome: p.dataset.outcome, x: box.x + box.width / 2 - map.x, y: box.y + box.height / 2 - map.y,
            fill: getComputedStyle(p.querySelectorAll("circle")[1]).fill,
        }];
    }))""")


async def _create_check(dev, target: str) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{dev.port}") as channel:
        reply = await scheduler_pb2_grpc.SchedulerServiceStub(channel).CreateCheck(
            scheduler_pb2.CreateCheckRequest(target=target, checks=["tcp"]), timeout=10)
    return reply.check_id


async def test_agents_page_shows_every_agent_on_the_map(dev, page):
    await page.goto(dev.url + "/agents")
    world = page.get_by_test_id("world-map")
    await expect(world.get_by_test_id("map-point")).to_have_count(DEV_AGENTS)
    await expect(world.locator('[data-testid="map-point"][data-outcome="online"]')).to_have_count(DEV_AGENTS)
    # The land is drawn from the shipped map data (a path of thousands of points, not an empty frame).
    assert len(await world.locator("path").nth(2).get_attribute("d") or "") > 10_000

    points = await _points(page)
    assert sorted(points) == sorted(f"{p.city} (simulated)" for p in PLACES)
    frankfurt, new_york, tokyo = (points[f"{p.city} (simulated)"] for p in PLACES)
    # Placed by their coordinates: west to east New York, Frankfurt, Tokyo; Frankfurt furthest north.
    assert new_york["x"] < frankfurt["x"] < tokyo["x"]
    assert frankfurt["y"] < new_york["y"] and frankfurt["y"] < tokyo["y"]
    print(f"screenshot: {await save_screenshot(page, 'map-agents')}")


async def test_results_page_marks_each_agent_in_its_outcomes_colour(dev, page):
    ok = await _create_check(dev, f"127.0.0.1:{dev.port}")
    await page.goto(f"{dev.url}/results/{ok}")
    world = page.get_by_test_id("world-map")
    await expect(world.locator('[data-testid="map-point"][data-outcome="success"]')).to_have_count(DEV_AGENTS)
    succeeded = await _points(page)
    assert sorted(succeeded) == sorted(f"{p.city} (simulated)" for p in PLACES)
    await expect(world.get_by_test_id("map-point").first.locator("title")).to_contain_text("tcp ok")
    print(f"screenshot: {await save_screenshot(page, 'map-results-ok')}")

    refused = await _create_check(dev, f"127.0.0.1:{free_port()}")  # nothing listens there
    await page.goto(f"{dev.url}/results/{refused}")
    await expect(world.locator('[data-testid="map-point"][data-outcome="failed"]')).to_have_count(DEV_AGENTS)
    failed = await _points(page)
    for name in succeeded:
        assert failed[name]["fill"] != succeeded[name]["fill"], "a failed probe is drawn like a success"
        assert (failed[name]["x"], failed[name]["y"]) == (succeeded[name]["x"], succeeded[name]["y"])
    print(f"screenshot: {await save_screenshot(page, 'map-results-failed')}")
