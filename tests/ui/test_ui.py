"""End to end: the browser UI served by Envoy, talking gRPC-Web to the running system."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import Locator, Page, expect

from hostcheck.cli.dev import demo_agent
from tests.helpers import HttpTarget, free_port
from tests.ui.conftest import AGENTS, save_screenshot

LATENCY = re.compile(r"^\d+(\.\d+)? (ms|s)$")
RESULTS_URL = re.compile(r"/results/[0-9a-f-]{36}$")


async def _rows(page: Page) -> list[tuple[str, str]]:
    """(agent name, status) of every result row, sorted."""
    rows = page.get_by_test_id("task-row")
    out = []
    for i in range(await rows.count()):
        row = rows.nth(i)
        name = (await row.locator("td").first.inner_text()).splitlines()[0].strip()
        out.append((name, await row.get_attribute("data-status") or ""))
    return sorted(out)


async def _expect_all_done(page: Page) -> None:
    rows = page.get_by_test_id("task-row")
    await expect(rows).to_have_count(AGENTS)
    await expect(page.locator('[data-testid="task-row"][data-status="completed"]')).to_have_count(AGENTS)
    for i in range(AGENTS):
        await expect(rows.nth(i).get_by_test_id("latency")).to_have_text(LATENCY)
        await expect(rows.nth(i).get_by_text("ok", exact=True)).to_be_visible()
    await expect(page.get_by_test_id("progress")).to_have_text(f"{AGENTS}/{AGENTS} tasks done")
    await expect(page.get_by_test_id("outcome")).to_have_text(f"{AGENTS} of {AGENTS} probes succeeded")
    await expect(page.get_by_test_id("outcome")).to_have_attribute("data-outcome", "success")
    await expect(page.get_by_test_id("latency-chart").locator("li")).to_have_count(AGENTS)


async def test_submit_a_check_and_watch_every_agent_report(dev, page, context):
    results_calls: list[str] = []
    page.on("request", lambda r: results_calls.append(r.url.rsplit("/", 1)[-1])
            if "/hostcheck.v1.ResultsService/" in r.url else None)
    await page.goto(dev.url + "/")
    await expect(page.get_by_role("heading", name="New check")).to_be_visible()
    # Survives only if the page is never reloaded: the results must arrive by the stream.
    await page.evaluate("window.__sameDocument = true")

    await page.get_by_label("Target").fill(f"127.0.0.1:{dev.port}")
    await page.get_by_role("checkbox", name="http").uncheck()
    await page.get_by_role("checkbox", name="tcp").check()
    await page.get_by_role("button", name="Run check").click()

    await expect(page).to_have_url(RESULTS_URL)
    await _expect_all_done(page)
    await expect(page.get_by_test_id("check-target")).to_have_text(f"127.0.0.1:{dev.port}")
    assert await page.evaluate("window.__sameDocument") is True
    assert "WatchCheck" in results_calls and "GetCheck" not in results_calls, results_calls
    seen = await _rows(page)
    assert [name for name, _ in seen] == [demo_agent(i)["HOSTCHECK_NAME"] for i in range(AGENTS)]

    # Details on demand: the tcp prober's measurements.
    await page.get_by_role("button", name="Details").first.click()
    await expect(page.locator('[data-fact="Connect"] dd')).to_have_text(LATENCY)
    print(f"screenshot: {await save_screenshot(page, 'results')}")

    # The permanent link, opened fresh, shows the same.
    again = await context.new_page()
    await again.goto(page.url)
    await _expect_all_done(again)
    assert await _rows(again) == seen

    # The dashboard lists the check with its status.
    await again.get_by_role("link", name="Dashboard").click()
    check_id = page.url.rsplit("/", 1)[-1]
    row = again.locator(f'tr[data-check-id="{check_id}"]')
    await expect(row).to_contain_text("completed")
    await expect(row).to_contain_text(f"{AGENTS}/{AGENTS}")
    await expect(row).to_have_attribute("data-outcome", "success")


async def test_a_check_whose_probes_all_failed_is_not_green(dev, page):
    """A closed port: the check is `completed` (every agent reported), but 0 of its probes
    succeeded, and its badge says so in red, on its page and in the dashboard's list."""
    closed = free_port()  # nothing listens there
    await page.goto(dev.url + "/")
    await page.get_by_label("Target").fill(f"127.0.0.1:{closed}")
    await page.get_by_role("checkbox", name="http").uncheck()
    await page.get_by_role("checkbox", name="tcp").check()
    await page.get_by_role("button", name="Run check").click()
    await expect(page).to_have_url(RESULTS_URL)
    await expect(page.locator('[data-testid="task-row"][data-status="failed"]')).to_have_count(AGENTS)
    await expect(page.get_by_test_id("outcome")).to_have_text(f"0 of {AGENTS} probes succeeded ({AGENTS} failed)")
    await expect(page.get_by_test_id("outcome")).to_have_attribute("data-outcome", "failed")
    check_id = page.url.rsplit("/", 1)[-1]
    await page.get_by_role("link", name="Dashboard").click()
    row = page.locator(f'tr[data-check-id="{check_id}"]')
    await expect(row).to_have_attribute("data-outcome", "failed")
    await expect(row.locator("[data-status]")).to_have_attribute("data-status", "failed")
    await expect(row).to_contain_text(f"0 of {AGENTS} succeeded")


async def test_rows_fill_in_live_as_agents_answer(dev, page):
    target = HttpTarget()
    try:
        await page.goto(dev.url + "/")
        await page.get_by_label("Target").fill(f"http://127.0.0.1:{target.port}/slow/2500")
        await page.get_by_role("button", name="Run check").click()
        await expect(page).to_have_url(RESULTS_URL)
        # First every agent's row, running (the slow target answers after 2.5 s) ...
        await expect(page.locator('[data-testid="task-row"][data-status="running"]')).to_have_count(AGENTS)
        await expect(page.get_by_test_id("outcome")).to_have_text(f"0 of {AGENTS} probes succeeded ({AGENTS} running)")
        await expect(page.get_by_test_id("watch-phase")).to_have_text("live")
        # ... then each fills in from the stream, and the check finishes.
        await _expect_all_done(page)
        await expect(page.get_by_test_id("watch-phase")).to_have_text("finished")
        await page.get_by_role("button", name="Details").first.click()
        await expect(page.locator('[data-fact="Status"] dd')).to_have_text("200 OK")
    finally:
        target.stop()


async def test_details_show_each_types_typed_result(dev, page):
    """One check of two types; each type's module renders its own typed fields, and the raw view
    is the typed message in the REST API's JSON (snake_case, the type's oneof field)."""
    target = HttpTarget()
    try:
        await page.goto(dev.url + "/")
        await page.get_by_label("Target").fill(f"http://127.0.0.1:{target.port}/")
        await page.get_by_role("checkbox", name="tcp").check()
        await page.locator('[data-field="tcp.port"]').fill(str(target.port))
        await page.get_by_role("button", name="Run check").click()
        await expect(page).to_have_url(RESULTS_URL)
        await expect(page.locator('[data-testid="task-row"][data-status="completed"]')).to_have_count(2 * AGENTS)
        await expect(page.get_by_test_id("progress")).to_have_text(f"{2 * AGENTS}/{2 * AGENTS} tasks done")

        http = await _open_details(page, "http")
        await expect(http.locator('[data-fact="Status"] dd')).to_have_text("200 OK")
        await expect(http.locator('[data-fact="Address"] dd')).to_have_text("127.0.0.1 (IPv4)")
        await expect(http.locator('[data-fact="Total time"] dd')).to_have_text(LATENCY)
        await expect(http.get_by_role("img", name="Request phases")).to_be_visible()
        await http.get_by_text("Response body").click()
        await expect(http.get_by_text("hello from the test server", exact=True)).to_be_visible()
        await http.get_by_text("Response headers").click()
        await expect(http.get_by_text("text/plain", exact=True)).to_be_visible()
        await _expect_raw_json(http, '"http": {', '"status_code": 200')

        tcp = await _open_details(page, "tcp")
        await expect(tcp.locator('[data-fact="Address"] dd')).to_have_text(f"127.0.0.1:{target.port}")
        await expect(tcp.locator('[data-fact="Connect"] dd')).to_have_text(LATENCY)
        await _expect_raw_json(tcp, '"tcp": {', f'"port": {target.port}')
        # The table's summaries come from the same modules.
        await expect(page.locator('[data-testid="task-row"][data-check-type="http"]').first).to_contain_text("HTTP 200")
        print(f"screenshot: {await save_screenshot(page, 'details')}")
    finally:
        target.stop()


async def _open_details(page: Page, check_type: str) -> Locator:
    row = page.locator(f'[data-testid="task-row"][data-check-type="{check_type}"]').first
    await row.get_by_role("button", name="Details").click()
    return page.locator(f'[id="details-{await row.get_attribute("data-task-id")}"]')


async def _expect_raw_json(details: Locator, *parts: str) -> None:
    await details.get_by_text("Raw data (JSON)").click()
    raw = details.locator("pre").last
    for part in parts:
        await expect(raw).to_contain_text(part)


async def test_server_validation_errors_show_at_their_fields(dev, page):
    await page.goto(dev.url + "/")
    target = page.get_by_label("Target")
    await target.fill("bad host")
    await page.get_by_role("checkbox", name="http").uncheck()
    await page.get_by_role("checkbox", name="tcp").check()
    port = page.locator('[data-field="tcp.port"]')
    await port.fill("70000")
    # Keyboard only: Enter in a field submits the form.
    await port.press("Enter")

    await expect(target).to_have_attribute("aria-invalid", "true")
    await expect(target).to_have_accessible_description(re.compile("must not contain spaces"))
    await expect(port).to_have_attribute("aria-invalid", "true")
    await expect(port).to_have_accessible_description(re.compile("70000 is out of range"))
    await expect(page.get_by_role("alert")).to_contain_text("fix the fields marked below")
    # Focus goes to the first field to fix; nothing was created.
    await expect(target).to_be_focused()
    await expect(page).to_have_url(dev.url + "/")
    print(f"screenshot: {await save_screenshot(page, 'validation')}")

    # Fixing the fields and submitting again clears the messages and runs the check.
    await target.fill(f"127.0.0.1:{dev.port}")
    await port.fill("")
    await page.get_by_role("button", name="Run check").click()
    await expect(page).to_have_url(RESULTS_URL)
    await _expect_all_done(page)


async def test_agents_page_lists_running_agents(dev, page):
    await page.goto(dev.url + "/agents")
    rows = page.get_by_test_id("agent-row")
    await expect(rows).to_have_count(AGENTS)
    await expect(page.locator('[data-testid="agent-row"][data-status="online"]')).to_have_count(AGENTS)
    await expect(page.get_by_test_id("agents-title")).to_have_text(f"Agents ({AGENTS} online of {AGENTS})")
    for i in range(AGENTS):
        await expect(rows.filter(has_text=demo_agent(i)["HOSTCHECK_NAME"])).to_contain_text("simulated=true")
    await expect(rows.first).to_contain_text(re.compile(r"\d+ s ago"))
    print(f"screenshot: {await save_screenshot(page, 'agents')}")


async def test_unknown_check_says_so(dev, page):
    missing = uuid.uuid4()
    await page.goto(f"{dev.url}/results/{missing}")
    await expect(page.get_by_role("heading", name="Check not found")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text(str(missing))


async def test_phone_width_keeps_the_form_usable(dev, page):
    await page.set_viewport_size({"width": 390, "height": 800})
    await page.goto(dev.url + "/")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width} px)"
    await expect(page.get_by_role("button", name="Run check")).to_be_visible()


async def test_from_field_chooses_agents_by_place(dev, page):
    """The form's "From" (AgentSelector.magic): "North America" picks the New York agent only (agent 1 of 2);
    an unknown continent is shown at its field."""
    await page.goto(dev.url + "/")
    await page.get_by_label("Target").fill(f"127.0.0.1:{dev.port}")
    await page.get_by_role("checkbox", name="http").uncheck()
    await page.get_by_role("checkbox", name="tcp").check()
    continents = page.get_by_label("Continents")
    await continents.fill("Atlantis")
    await page.get_by_role("button", name="Run check").click()
    await expect(continents).to_have_attribute("aria-invalid", "true")
    await expect(continents).to_have_accessible_description(re.compile("unknown continent 'ATLANTIS'"))

    await continents.fill("")
    await page.get_by_label("From").fill("North America")
    await page.get_by_role("button", name="Run check").click()
    await expect(page).to_have_url(RESULTS_URL)
    await expect(page.get_by_test_id("outcome")).to_have_text("1 of 1 probe succeeded")
    assert await _rows(page) == [(demo_agent(1)["HOSTCHECK_NAME"], "completed")]


async def test_a_running_ping_shows_its_replies_live(dev, page):
    await page.goto(dev.url + "/")
    await page.get_by_label("Target").fill("127.0.0.1")
    await page.get_by_role("checkbox", name="http").uncheck()
    await page.get_by_role("checkbox", name="ping").check()
    await page.locator('[data-field="ping.count"]').fill("10")  # one a second: ~9 s running
    await page.get_by_role("button", name="Run check").click()
    await expect(page).to_have_url(RESULTS_URL)
    running = page.locator('[data-testid="task-row"][data-status="running"]')
    await expect(running).to_have_count(AGENTS)
    task_ids = [await running.nth(i).get_attribute("data-task-id") for i in range(AGENTS)]
    # While it runs, each row says which reply came last (rows by task id: a row that finishes
    # leaves the `running` set, so positions among running rows move).
    for task_id in task_ids:
        row = page.locator(f'[data-testid="task-row"][data-task-id="{task_id}"]')
        await expect(row).to_contain_text(re.compile(r"reply \d+ of 10 from 127\.0\.0\.1.*\(\d+/10\)"),
                                          timeout=8000)
    await expect(page.locator('[data-testid="task-row"][data-status="completed"]')).to_have_count(AGENTS,
                                                                                                 timeout=20000)
    await expect(page.get_by_test_id("outcome")).to_have_text(f"{AGENTS} of {AGENTS} probes succeeded")
