"""The chat page, in a real headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from chatwire.server import create_app
from chatwire.store import Store
from tests.servers import ScriptedServer, ThreadedServer, running

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless, and quiet: this machine has no network for Chromium's own services.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    page = context.new_page()
    yield page
    context.close()


def test_stream_stop_and_find_it_again(page: Page, tmp_path: Path) -> None:
    store = Store(tmp_path / "page.db")
    with running(create_app("local", store=store)) as gateway:
        page.goto(gateway.url("/"))
        expect(page.locator("#model option")).to_have_text(["local/smollm2-135m-instruct"])
        page.fill("#prompt", "Why is the sky blue?")
        page.keyboard.press("Enter")
        answer = page.locator(".message.assistant .text").last
        expect(page.locator(".message.user .text")).to_have_text(["Why is the sky blue?"])
        expect(answer).to_have_text(re.compile(r"\w+ \w+ \w+"), timeout=60_000)
        expect(page.locator("#stop")).to_be_visible()
        shot_dir = os.environ.get("CHATWIRE_SCREENSHOT_DIR")
        if shot_dir:
            page.screenshot(path=str(Path(shot_dir) / "chat-page.png"))
        page.click("#stop")
        expect(page.locator(".message.assistant .note")).to_have_text("stopped")
        expect(page.locator("#send")).to_be_visible()
        shown = answer.inner_text()

        page.reload()
        entry = page.locator("#history button", has_text="Why is the sky blue?")
        expect(entry).to_have_count(1, timeout=15_000)
        entry.click()
        expect(page.locator(".message.user .text")).to_have_text(["Why is the sky blue?"])
        reopened = page.locator(".message.assistant .text").last.inner_text()
        expect(page.locator(".message.assistant .note")).to_have_text("interrupted")
    (exchange,) = store.recent()
    assert exchange.status == "interrupted"
    # What the log kept is at least what the page showed when it was stopped.
    assert exchange.response.startswith(shown.strip()[:20])
    assert reopened == exchange.response


def test_model_output_cannot_inject_markup(
    page: Page, server: ThreadedServer, server_app: ScriptedServer
) -> None:
    hostile = ["<script>window.pwned = 1</script>", ' <img src="x" onerror="window.pwned = 2">']
    server_app.pieces = hostile
    try:
        app = create_app("forefront", options={"base_url": server.url("/free-chat")})
        with running(app) as gateway:
            page.goto(gateway.url("/"))
            page.fill("#prompt", "say something nasty")
            page.click("#send")
            answer = page.locator(".message.assistant .text").last
            expect(answer).to_have_text("".join(hostile))
            expect(page.locator("#send")).to_be_visible()
            assert page.evaluate("window.pwned") is None
            assert page.locator("#messages img, #messages script").count() == 0
    finally:
        server_app.pieces = ["Hello", ", ", "world", "!"]


def test_api_key_is_asked_for_and_kept(page: Page, server: ThreadedServer) -> None:
    app = create_app("forefront", api_key="s3cret", options={"base_url": server.url("/free-chat")})
    with running(app) as gateway:
        page.on("dialog", lambda dialog: dialog.accept("s3cret"))
        page.goto(gateway.url("/"))
        expect(page.locator("#model option")).to_have_text(["forefront/gpt-3.5-turbo"])
        page.fill("#prompt", "hi")
        page.click("#send")
        expect(page.locator(".message.assistant .text").last).to_have_text("Hello, world!")
