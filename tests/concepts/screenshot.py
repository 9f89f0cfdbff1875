"""Screenshots of a concepts page for docs/concepts.md (not a test; run by hand).

    python -m tests.concepts.screenshot OUT/concepts.html [--out docs/img/concepts.png] [--selector '#class-portrait']

Opens the page in headless Chromium and saves the whole page, or one element of it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.serve.browsing import ARGS, CHROMIUM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img/concepts.png"))
    parser.add_argument("--selector", default=None, help="CSS selector of the element to capture")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1100)
    parser.add_argument("--full", action="store_true", help="the whole page, not the first screen")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(args.page.resolve().as_uri())
        page.wait_for_load_state("networkidle")
        page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
        page.wait_for_function("[...document.images].every(i => i.complete)", timeout=60_000)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.selector:
            page.locator(args.selector).first.screenshot(path=str(args.out))
        else:
            page.screenshot(path=str(args.out), full_page=args.full)
        print(f"saved {args.out}")
        browser.close()


if __name__ == "__main__":
    main()
