"""Make the README screenshot of the web interface on a real model (not a test; run by hand).

    TORCH_HOME=... python -m tests.serve.screenshot [--model mobilenet_v2] [--out docs/img/serve.png]

Starts the server in-process, opens a unit in headless Chromium, waits until the grid thumbnails in view and
the large image are rendered, and saves a 1366x800 screenshot.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from imagemachines.models import DEFAULT_MODEL, load_model
from imagemachines.serve.app import create_app
from tests.serve.browsing import ARGS, CHROMIUM
from tests.serve.conftest import live_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--view", default="layer=features.9&unit=17&method=lucid&size=224&steps=128&seed=0&grid=64")
    parser.add_argument("--out", type=Path, default=Path("docs/img/serve.png"))
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    model = load_model(args.model)
    app = create_app({model.name: model}, cache_dir=Path(tempfile.mkdtemp(prefix="imagemachines-shot-")))
    with live_server(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 800})
        started = time.monotonic()
        page.goto(f"{base}/#model={model.name}&{args.view}")
        page.wait_for_selector("#detail-img[data-state=running]", timeout=args.timeout * 1000)
        print(f"first preview after {time.monotonic() - started:.1f} s")
        page.wait_for_selector("#detail-img[data-state=done]", timeout=args.timeout * 1000)
        print(f"large image done after {time.monotonic() - started:.1f} s")
        page.wait_for_function(
            "[...document.querySelectorAll('.card')].filter(c => c.getBoundingClientRect().top < innerHeight - 60)"
            ".every(c => c.dataset.state === 'done')", timeout=args.timeout * 1000, polling=1000)
        time.sleep(1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        print(f"saved {args.out} after {time.monotonic() - started:.1f} s")
        browser.close()
    app.state.scheduler.close()


if __name__ == "__main__":
    main()
