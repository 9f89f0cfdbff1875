"""What the browser tests and the screenshot scripts share: Debian's Chromium, its flags, and where pictures go."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
# pytestmark of every browser test module
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]


def _wait_for_function_without_eval(page, expression: str, *, arg=None, timeout: float | None = None, polling=None):
    """``Page.wait_for_function`` that asks the page through the DevTools protocol (``evaluate``) every 50 ms
    (or every *polling* ms) instead of running ``eval`` inside it: the server's Content-Security-Policy forbids
    ``eval`` in its pages, as it should, and Playwright's own polling uses it. Returns a handle to the truthy
    value, as Playwright does."""
    import time

    from playwright.sync_api import Error, TimeoutError

    every = polling if isinstance(polling, (int, float)) else 50
    deadline = time.monotonic() + (30_000 if timeout is None else timeout) / 1000
    while True:
        try:
            if page.evaluate(expression, arg):
                return page.evaluate_handle(expression, arg)
        except Error as exc:  # a navigation replaced the page's context: ask the new one
            if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timeout {timeout}ms exceeded waiting for {expression!r}")
        page.wait_for_timeout(every)  # lets Playwright deliver the page's events meanwhile


def _allow_wait_for_function_under_csp() -> None:
    try:
        from playwright.sync_api import Page
    except ImportError:  # no Playwright: the browser tests skip
        return
    Page.wait_for_function = _wait_for_function_without_eval


_allow_wait_for_function_under_csp()  # every browser test and screenshot script imports this module
