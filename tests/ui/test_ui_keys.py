"""The UI's API key: pasted in the header, kept in the browser, sent on every gRPC-Web call."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import expect

RESULTS_URL = re.compile(r"/results/[0-9a-f-]{36}$")


async def admin_token(dev) -> str:
    # `hostcheck dev` made one in its data dir (no HOSTCHECK_ADMIN_TOKEN here); the banner says where.
    (path,) = re.findall(r"admin:\s+token in (\S+) \(0600\)", dev.proc.output())
    with open(path) as f:
        return f.read().strip()


async def test_a_pasted_key_owns_the_checks_the_ui_makes_and_lists(dev, page):
    async with httpx.AsyncClient(base_url=dev.url, timeout=10) as rest:
        made = await rest.post("/api/keys", json={"name": "browser"},
                               headers={"authorization": f"Bearer {await admin_token(dev)}"})
        assert made.status_code == 200, made.text
        key_id, key = made.json()["key_id"], made.json()["api_key"]
        body = {"target": f"127.0.0.1:{dev.port}", "checks": ["tcp"]}
        keyed = (await rest.post("/api/checks", json=body, headers={"authorization": f"Bearer {key}"})).json()
        anonymous = (await rest.post("/api/checks", json=body)).json()

        await page.goto(dev.url + "/")
        await expect(page.locator(f'tr[data-check-id="{anonymous["check_id"]}"]')).to_be_visible()
        await expect(page.locator(f'tr[data-check-id="{keyed["check_id"]}"]')).to_have_count(0)

        await page.get_by_test_id("api-key-button").click()
        await page.get_by_label("API key", exact=True).fill(key)
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_test_id("api-key-button")).to_have_text(f"API key …{key[-4:]}")
        # The list is now the key's.
        await expect(page.locator(f'tr[data-check-id="{keyed["check_id"]}"]')).to_be_visible()
        await expect(page.locator(f'tr[data-check-id="{anonymous["check_id"]}"]')).to_have_count(0)

        # A check made in the form belongs to the key.
        await page.get_by_label("Target").fill(f"127.0.0.1:{dev.port}")
        await page.get_by_role("checkbox", name="http").uncheck()
        await page.get_by_role("checkbox", name="tcp").check()
        await page.get_by_role("button", name="Run check").click()
        await expect(page).to_have_url(RESULTS_URL)
        check_id = page.url.rsplit("/", 1)[-1]
        stored = (await rest.get(f"/api/checks/{check_id}")).json()
        assert (stored.get("check") or stored)["created_by_key_id"] == key_id

        # Kept in this browser across reloads; forgetting it makes the UI anonymous again.
        await page.reload()
        await expect(page.get_by_test_id("api-key-button")).to_have_text(f"API key …{key[-4:]}")
        assert await page.evaluate("localStorage.getItem('hostcheck.apiKey')") == key
        await page.get_by_test_id("api-key-button").click()
        await page.get_by_role("button", name="Forget key").click()
        await expect(page.get_by_test_id("api-key-button")).to_have_text("Anonymous")
        assert await page.evaluate("localStorage.getItem('hostcheck.apiKey')") is None

        # A revoked key is refused, and the UI says why instead of failing silently.
        await rest.delete(f"/api/keys/{key_id}", headers={"authorization": f"Bearer {await admin_token(dev)}"})
        await page.evaluate(f"localStorage.setItem('hostcheck.apiKey', {key!r})")
        await page.goto(dev.url + "/")
        await expect(page.get_by_text(re.compile("Not signed in"))).to_be_visible()
