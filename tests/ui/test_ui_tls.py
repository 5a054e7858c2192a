"""The tls type in the browser: its options on the form, its details with the certificate chain."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.probers.tlslab import TlsServer, make_lab, server_context
from tests.ui.conftest import AGENTS, save_screenshot

RESULTS_URL = re.compile(r"/results/[0-9a-f-]{36}$")


async def test_tls_check_shows_session_and_certificate_chain(dev, page: Page, tmp_path):
    """The dev agents do not trust the lab's CA: with "report only" the check succeeds, says why the chain
    did not verify, and shows the leaf and the intermediate the server sent."""
    lab = make_lab(tmp_path)
    server = await TlsServer(server_context(lab.chained)).start()
    try:
        await page.goto(dev.url + "/")
        await page.get_by_label("Target").fill(f"127.0.0.1:{server.port}")
        await page.get_by_role("checkbox", name="http").uncheck()
        await page.get_by_role("checkbox", name="tls").check()
        await page.locator('[data-field="tls.server_name"]').fill("www.t.test")
        await page.locator('[data-field="tls.insecure"]').select_option("report only (insecure)")
        await page.get_by_role("button", name="Run check").click()
        await expect(page).to_have_url(RESULTS_URL)
        await expect(page.locator('[data-testid="task-row"][data-status="completed"]')).to_have_count(AGENTS)

        row = page.locator('[data-testid="task-row"][data-check-type="tls"]').first
        await expect(row).to_contain_text("5 days left")
        await row.get_by_role("button", name="Details").click()
        details = page.locator(f'[id="details-{await row.get_attribute("data-task-id")}"]')
        await expect(details.locator('[data-fact="Server name (SNI)"] dd')).to_have_text("www.t.test")
        await expect(details.locator('[data-fact="Verified"] dd')).to_have_text(
            "no: unable to get local issuer certificate")
        await expect(details.locator('[data-fact="Expiry"] dd')).to_have_text("5 days left")
        chain = details.get_by_role("list", name="Certificate chain")
        await expect(chain.locator("[data-certificate]")).to_have_count(2)
        leaf = chain.locator('[data-certificate="leaf"]')
        await expect(leaf.locator('[data-fact="Subject"] dd')).to_have_text("O=Hostcheck TLS Lab, CN=www.t.test")
        await expect(leaf.locator('[data-fact="Key"] dd')).to_have_text("EC 256 bits")
        await expect(chain.locator('[data-certificate="CA 1"] [data-fact="Key"] dd')).to_have_text("EC 384 bits")
        print(f"screenshot: {await save_screenshot(page, 'tls-details')}")
    finally:
        await server.stop()
