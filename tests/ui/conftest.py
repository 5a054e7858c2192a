"""The browser UI end to end: `hostcheck dev` as a subprocess (two agents) and Debian's Chromium
driven by Playwright. One system and one browser per module; a fresh browser context per test.

A test fails on any browser console error. On failure every open page is screenshotted into
test-artifacts/ui/ (gitignored) and the paths are printed with the test's output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from tests.helpers import ROOT, Proc, assert_eventually, free_port, hostcheck_cmd

CHROMIUM = os.environ.get("HOSTCHECK_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialing out on this closed network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--no-pings", "--disable-domain-reliability",
                  "--disable-client-side-phishing-detection", "--metrics-recording-only",
                  "--disable-features=AutofillServerCommunication,OptimizationHints,Translate,MediaRouter",
                  # Tests reach only loopback: Chromium's own calls home (autofill, accounts, updates)
                  # resolve no name but localhost, and anything not on loopback goes to a proxy
                  # that is not there (loopback bypasses proxies by default).
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
                  "--proxy-server=http://127.0.0.1:9"]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
AGENTS = 2


@dataclass
class DevSystem:
    url: str
    port: int
    proc: Proc


@pytest.fixture(scope="module")
def built_ui() -> Path:
    """The UI as Envoy serves it; scripts/build-ui.sh is a quick no-op when it is up to date."""
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed: the UI tests need Node.js 20+ to build gateway/web")
    out = subprocess.run([str(ROOT / "scripts" / "build-ui.sh")], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        pytest.fail(f"scripts/build-ui.sh failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return ROOT / "gateway" / "web" / "dist" / "index.html"


@pytest.fixture(scope="module")
async def dev(built_ui, tmp_path_factory, request) -> DevSystem:
    work = tmp_path_factory.mktemp("ui-dev")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    agents = getattr(request.module, "DEV_AGENTS", AGENTS)  # a test module may ask for more
    proc = Proc(hostcheck_cmd("dev", "--port", str(port), "--data-dir", str(work / "data"),
                              "--allow-target", "127.0.0.0/8", "--agents", str(agents)),
                env=env, log_path=work / "dev.log")

    def running() -> bool:
        if not proc.alive():
            raise AssertionError(f"hostcheck dev exited:\n{proc.output()[-3000:]}")
        return "Host Checker is running" in proc.output()

    try:
        await assert_eventually(running, timeout=60, interval=0.05, message="hostcheck dev running")
        yield DevSystem(url=f"http://127.0.0.1:{port}", port=port, proc=proc)
    finally:
        code = proc.stop()
        assert code == 0, f"hostcheck dev exited with {code}:\n{proc.output()[-3000:]}"


@pytest.fixture(scope="module")
async def browser() -> Browser:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup-system.sh installs Debian's chromium")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            await b.close()


@dataclass
class Console:
    """Errors the pages of one test printed to the browser console (or threw uncaught)."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                self.errors.append(f"{page.url}: console.error: {msg.text} ({msg.location})")
        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: uncaught: {exc}"))
        return page


@pytest.fixture
async def context(browser, request) -> BrowserContext:
    for stale in ARTIFACTS.glob(f"FAILED-{_slug(request.node.name)}-*.png"):
        stale.unlink()
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(10_000)
    console = Console()
    ctx.on("page", console.watch)
    ctx.console = console  # type: ignore[attr-defined]
    try:
        yield ctx
        rep = getattr(request.node, "rep_call", None)
        failed = rep is None or rep.failed
        if failed or console.errors:
            await _screenshots(ctx, request.node.name)
        assert not console.errors, "browser console errors:\n" + "\n".join(console.errors)
    finally:
        await ctx.close()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


async def _screenshots(ctx: BrowserContext, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    slug = _slug(name)
    for i, page in enumerate(ctx.pages):
        path = ARTIFACTS / f"FAILED-{slug}-{i}.png"
        try:
            await page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of {page.url}: {path}")
        except Exception as exc:  # noqa: BLE001 - a failed screenshot must not hide the test's failure
            print(f"no screenshot of {page.url}: {exc}")


@pytest.fixture
async def page(context) -> Page:
    return await context.new_page()


async def save_screenshot(page: Page, name: str) -> Path:
    """A screenshot kept on success too, as evidence of what the test saw."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
