"""The mtr type in the browser: its options on the form, its hop table (mtr's columns) in the details."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.ui.conftest import AGENTS, save_screenshot

RESULTS_URL = re.compile(r"/results/[0-9a-f-]{36}$")


async def test_mtr_check_shows_the_hop_table(dev, page: Page):
    await page.goto(dev.url + "/")
    await page.get_by_label("Target").fill("127.0.0.1")
    await page.get_by_role("checkbox", name="http").uncheck()
    await page.get_by_role("checkbox", name="mtr").check()
    # TCP probes to the dev system's own public port: SYN-ACKs from 127.0.0.1.
    await page.locator('[data-field="mtr.protocol"]').select_option("tcp")
    await page.locator('[data-field="mtr.port"]').fill(str(dev.port))
    await page.locator('[data-field="mtr.count"]').fill("3")
    await page.locator('[data-field="mtr.interval_ms"]').fill("100")
    await page.get_by_role("button", name="Run check").click()
    await expect(page).to_have_url(RESULTS_URL)
    await expect(page.locator('[data-testid="task-row"][data-status="completed"]')).to_have_count(AGENTS)

    row = page.locator('[data-testid="task-row"][data-check-type="mtr"]').first
    await expect(row).to_contain_text("1 hop(s)")
    await expect(row).to_contain_text("0.0% loss")
    await row.get_by_role("button", name="Details").click()
    details = page.locator(f'[id="details-{await row.get_attribute("data-task-id")}"]')
    await expect(details.locator('[data-fact="Protocol"] dd')).to_have_text(f"tcp port {dev.port}")
    await expect(details.locator('[data-fact="Rounds"] dd')).to_have_text("3")
    await expect(details.locator('[data-fact="Reached"] dd')).to_have_text("yes")
    table = details.get_by_role("table", name="mtr hops")
    for header in ("Hop", "Host", "Loss%", "Snt", "Last", "Avg", "Best", "Wrst", "StDev"):
        await expect(table.get_by_role("columnheader", name=header, exact=True)).to_be_visible()
    cells = table.locator("tbody tr").first.locator("td")
    await expect(cells.nth(0)).to_have_text("1")
    await expect(cells.nth(1)).to_have_text("127.0.0.1")
    await expect(cells.nth(2)).to_have_text("0.0%")
    await expect(cells.nth(3)).to_have_text("3")
    await expect(cells.nth(5)).to_have_text(re.compile(r"^\d+(\.\d+)? ms$"))
    print(f"screenshot: {await save_screenshot(page, 'mtr-details')}")
