"""Screenshots of an examples page for docs/examples.md (not a test; run by hand).

    python -m tests.index.screenshot PAGE.html [--out docs/img/examples.png]

Opens the page in headless Chromium and saves it plain and with the heat overlay switched on
(``…-heat.png``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.serve.browsing import ARGS, CHROMIUM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img/examples.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1100)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(args.page.resolve().as_uri())
        page.wait_for_load_state("networkidle")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        page.check("#heat")
        page.wait_for_timeout(300)
        heat = args.out.with_name(args.out.stem + "-heat" + args.out.suffix)
        page.screenshot(path=str(heat))
        print(f"saved {args.out} and {heat}")
        browser.close()


if __name__ == "__main__":
    main()
