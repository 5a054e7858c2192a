"""The monitor pages: the list (state, uptime, sparklines), a monitor's page (live state, runs,
pause/resume, delete), the form (server errors at their fields, the webhook secret once) and the
public status page, against `hostcheck dev` (the server's minimum interval: 10 s, so a monitor's
first run is due within 5 s and the next ones 10 s apart)."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
from playwright.async_api import Page, expect

from tests.helpers import free_port
from tests.ui.conftest import AGENTS, save_screenshot
from tests.ui.test_ui_keys import admin_token

MONITOR_URL = re.compile(r"/monitors/[0-9a-f-]{36}$")
# The first run is due within 5 s and takes well under a second on loopback; the list refreshes
# every 5 s.
FIRST_RUN_S = 30


async def _new_key(dev, name: str) -> str:
    async with httpx.AsyncClient(base_url=dev.url, timeout=10) as rest:
        made = await rest.post("/api/keys", json={"name": name},
                               headers={"authorization": f"Bearer {await admin_token(dev)}"})
        assert made.status_code == 200, made.text
        return made.json()["api_key"]


async def _use_key(page: Page, dev, key: str) -> None:
    await page.goto(dev.url + "/")
    await page.evaluate(f"localStorage.setItem('hostcheck.apiKey', {key!r})")


async def test_monitors_need_an_api_key_and_say_so(dev, page):
    for path in ("/monitors", "/monitors/new", "/monitors/00000000-0000-0000-0000-000000000000"):
        await page.goto(dev.url + path)
        await expect(page.get_by_test_id("needs-api-key")).to_contain_text("Monitors need an API key")
    await expect(page.get_by_role("link", name="Monitors", exact=True)).to_be_visible()


async def test_a_monitor_listed_watched_paused_and_on_its_public_status_page(dev, page):
    key = await _new_key(dev, "monitors-ui")
    auth = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=dev.url, timeout=10) as rest:
        made = await rest.post("/api/monitors", headers=auth, json={
            "name": "loopback tcp", "target": f"127.0.0.1:{dev.port}", "checks": ["tcp"], "interval_s": 10,
            "alert": {"quorum": 1, "for_runs": 1}, "status_slug": "ui-status"})
        assert made.status_code == 200, made.text
        monitor_id = made.json()["monitor_id"]

        await _use_key(page, dev, key)
        await page.goto(dev.url + "/monitors")
        row = page.locator(f'tr[data-monitor-id="{monitor_id}"]')
        await expect(row).to_be_visible()
        await expect(row.get_by_role("link", name="loopback tcp")).to_be_visible()
        await expect(row).to_contain_text(f"127.0.0.1:{dev.port}")
        await expect(row.get_by_test_id("monitor-state")).to_have_attribute(
            "data-state", re.compile("^(pending|up)$"))
        # Its first run: up from every agent, 100 % over 24 h, a latency point per agent.
        await expect(row.get_by_test_id("monitor-state")).to_have_attribute("data-state", "up", timeout=FIRST_RUN_S * 1000)
        await expect(row.get_by_test_id("uptime-24h")).to_have_text("100%")
        await expect(row.get_by_test_id("sparkline")).to_have_count(AGENTS)
        await save_screenshot(page, "monitors-list")

        await row.get_by_role("link", name="loopback tcp").click()
        await expect(page).to_have_url(MONITOR_URL)
        await expect(page.get_by_test_id("monitor-name")).to_have_text("loopback tcp")
        await expect(page.get_by_test_id("monitor-state")).to_have_attribute("data-state", "up")
        await expect(page.get_by_test_id("watch-phase")).to_have_attribute("data-phase", "live")
        await expect(page.get_by_test_id("monitor-settings")).to_contain_text("10 s")
        runs = page.get_by_role("table", name="Runs")
        await expect(runs.locator('tr[data-verdict="up"]').first).to_contain_text(f"0/{AGENTS}")
        await expect(runs.locator('tr[data-verdict="up"]').first.get_by_role("link", name="results")).to_have_attribute(
            "href", re.compile(r"^/results/[0-9a-f-]{36}$"))
        # Its first evaluated run took it from pending to up.
        await expect(page.locator('[data-event-id][data-to="up"]')).to_have_count(1)

        # Pause: the state says so at once, and the change is listed.
        await page.get_by_role("button", name="Pause").click()
        await expect(page.get_by_test_id("monitor-state")).to_have_attribute("data-state", "paused")
        await expect(page.get_by_role("button", name="Resume")).to_be_visible()
        await expect(page.locator('[data-event-id][data-to="paused"]')).to_have_count(1)
        stored = (await rest.get(f"/api/monitors/{monitor_id}", headers=auth)).json()
        assert stored["paused"] is True and stored["state"] == "paused", stored
        await save_screenshot(page, "monitor-page")

        # The status page is public: no key in this browser, and it shows the paused state.
        await page.evaluate("localStorage.removeItem('hostcheck.apiKey')")
        await page.goto(dev.url + "/status/ui-status")
        await expect(page.get_by_test_id("status-overall")).to_have_text("1 paused")
        item = page.locator('li[data-monitor="loopback tcp"]')
        await expect(item.get_by_test_id("monitor-state")).to_have_attribute("data-state", "paused")
        await expect(item.get_by_test_id("uptime-24h")).to_contain_text("100%")
        await expect(item).to_contain_text("tcp every 10 s")
        await save_screenshot(page, "status-page")
        await page.goto(dev.url + "/status/no-such-page")
        await expect(page.get_by_text("There is no status page")).to_be_visible()

        # Resume, then delete: back to the list, without it.
        await _use_key(page, dev, key)
        await page.goto(f"{dev.url}/monitors/{monitor_id}")
        await page.get_by_role("button", name="Resume").click()
        await expect(page.get_by_test_id("monitor-state")).to_have_attribute("data-state", re.compile("^(pending|up)$"))
        await page.get_by_role("button", name="Delete").click()
        await page.get_by_role("button", name="Yes, delete").click()
        await expect(page).to_have_url(re.compile(r"/monitors$"))
        await expect(page.locator(f'tr[data-monitor-id="{monitor_id}"]')).to_have_count(0)
        gone = await rest.get(f"/api/monitors/{monitor_id}", headers=auth)
        assert gone.status_code == 404, gone.text


async def test_the_form_shows_field_errors_then_the_webhook_secret_once(dev, page, context):
    key = await _new_key(dev, "monitors-form")
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=dev.url)
    await _use_key(page, dev, key)
    await page.goto(dev.url + "/monitors")
    await page.get_by_role("link", name="New monitor").click()
    await expect(page).to_have_url(re.compile(r"/monitors/new$"))

    form = page.get_by_role("form", name="New monitor")
    await form.get_by_label("Name", exact=True).fill("from the form")
    await form.get_by_label("Target", exact=True).fill(f"127.0.0.1:{dev.port}")
    await form.get_by_role("checkbox", name="http").uncheck()
    await form.get_by_role("checkbox", name="tcp").check()
    await form.get_by_label("Interval (s)").fill("10")
    await form.get_by_label("Status page slug").fill("Not A Slug!")
    # Checked here: a number that is not one never reaches the server.
    await form.get_by_label("Quorum", exact=True).fill("two")
    await form.get_by_role("button", name="Create monitor").click()
    await expect(form.locator('[data-field="alert.quorum"]')).to_have_attribute("aria-invalid", "true")
    await expect(form.get_by_role("alert")).to_contain_text("The monitor was not created")

    # Checked by the server: its violation is shown at the field it names.
    await form.get_by_label("Quorum", exact=True).fill("1")
    await form.get_by_role("button", name="Create monitor").click()
    slug = form.locator('[data-field="status_slug"]')
    await expect(slug).to_have_attribute("aria-invalid", "true")
    await expect(slug).to_be_focused()
    await expect(form.locator("[data-field-error]")).to_have_count(1)
    await save_screenshot(page, "monitor-form-errors")

    await form.get_by_label("Status page slug").fill("form-status")
    await form.get_by_label("Webhook URL").fill("http://127.0.0.1:9/hook")
    await form.get_by_role("button", name="Create monitor").click()
    created = page.get_by_test_id("monitor-created")
    await expect(created).to_contain_text("from the form")
    secret = page.get_by_test_id("webhook-secret")
    await expect(secret).to_have_value(re.compile(r"^[0-9a-f]{64}$"))
    shown = await secret.input_value()
    await created.get_by_role("button", name="Copy").click()
    await expect(created.get_by_role("status")).to_have_text("Copied.")
    assert await page.evaluate("navigator.clipboard.readText()") == shown

    await created.get_by_role("link", name="Open the monitor").click()
    await expect(page).to_have_url(MONITOR_URL)
    await expect(page.get_by_test_id("monitor-name")).to_have_text("from the form")
    settings = page.get_by_test_id("monitor-settings")
    await expect(settings).to_contain_text("127.0.0.1:9")
    await expect(settings).not_to_contain_text("/hook")
    await expect(settings.get_by_role("link", name="/status/form-status")).to_be_visible()
    # Shown once: the monitor as read back has no secret, and the page shows none.
    assert shown not in await page.content()


async def test_a_down_monitor_shows_its_failing_agents_and_its_webhook_delivered(dev, page):
    """Every agent fails to connect: down at the first run, the evidence lists each agent's error,
    and the state change's webhook (to a receiver here) is shown delivered."""
    received: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        body = await reader.readexactly(int(length.group(1))) if length else b""
        await received.put((head, body))
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    receiver = await asyncio.start_server(receive, "127.0.0.1", 0)
    hook_port = receiver.sockets[0].getsockname()[1]
    key = await _new_key(dev, "monitors-down")
    auth = {"authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(base_url=dev.url, timeout=10) as rest:
            made = await rest.post("/api/monitors", headers=auth, json={
                "name": "closed port", "target": f"127.0.0.1:{free_port()}", "checks": ["tcp"], "interval_s": 10,
                "alert": {"quorum": AGENTS, "webhook_url": f"http://127.0.0.1:{hook_port}/hook"}})
            assert made.status_code == 200, made.text
            monitor_id = made.json()["monitor_id"]

            await _use_key(page, dev, key)
            await page.goto(f"{dev.url}/monitors/{monitor_id}")
            await expect(page.get_by_test_id("monitor-state")).to_have_attribute("data-state", "down",
                                                                                  timeout=FIRST_RUN_S * 1000)
            runs = page.get_by_role("table", name="Runs")
            await expect(runs.locator('tr[data-verdict="failing"]').first).to_contain_text(f"{AGENTS}/{AGENTS}")
            change = page.locator('[data-event-id][data-to="down"]')
            await expect(change).to_have_count(1)
            await expect(change.locator("li")).to_have_count(AGENTS)
            await expect(change.locator("li code").first).not_to_be_empty()
            event_id = await change.get_attribute("data-event-id")

            head, body = await asyncio.wait_for(received.get(), FIRST_RUN_S)
            assert b"x-hostcheck-signature: sha256=" in head.lower()
            payload = json.loads(body)
            assert payload["event_id"] == event_id and payload["state"] == "down", payload
            await expect(change.get_by_test_id("notification")).to_have_attribute(
                "data-notification", "delivered", timeout=15_000)
            await save_screenshot(page, "monitor-down")

            await page.goto(dev.url + "/monitors")
            row = page.locator(f'tr[data-monitor-id="{monitor_id}"]')
            await expect(row.get_by_test_id("monitor-state")).to_have_attribute("data-state", "down")
            await expect(row.get_by_test_id("uptime-24h")).to_have_text("0%")
            await rest.delete(f"/api/monitors/{monitor_id}", headers=auth)
    finally:
        receiver.close()
        await receiver.wait_closed()
