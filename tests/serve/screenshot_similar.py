"""Make the docs screenshots of one painting's similar paintings under each mode (not a test; run by hand).

    imagemachines index mobilenet_v2 ../shared/data/paintings/images --metadata ../shared/data/paintings/labels.csv \\
        --out /tmp/paintings-index
    TORCH_HOME=... python -m tests.serve.screenshot_similar --index /tmp/paintings-index --painting landscape/A_4_27.jpg

Starts the server in-process with the index, opens the painting, and for each mode (content, style,
composition) saves the side panel's similar paintings as ``docs/img/similar-MODE.png``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from imagemachines.index import open_index
from imagemachines.models import DEFAULT_MODEL, load_model
from imagemachines.serve.app import create_app
from tests.serve.browsing import ARGS, CHROMIUM
from tests.serve.conftest import live_server

SHOWN = "[...document.querySelectorAll('#pv-similar img')].every(i => i.complete && i.naturalWidth > 0)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--painting", required=True, help="the painting's path in the index")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    model = load_model(args.model)
    index = open_index(args.index)
    image_id = next(i.id for i in index.images() if i.path == args.painting)
    app = create_app({model.name: model}, cache_dir=Path(tempfile.mkdtemp(prefix="imagemachines-shot-")),
                     indexes=[index])
    timeout = args.timeout * 1000
    with live_server(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        for mode in ("content", "style", "composition"):
            started = time.monotonic()
            page.goto("about:blank")  # a fresh page per mode: a hash change alone keeps the last mode's cards
            page.goto(f"{base}/#model={model.name}&layer=features.18&method=lucid&size=224&steps=64&seed=0&grid=48"
                      f"&index={index.path.name}&image={image_id}&sim={mode}")
            page.wait_for_selector("#painting:not([hidden]) #pv-similar .ex-card", timeout=timeout)
            page.wait_for_function(SHOWN, timeout=timeout, polling=500)
            page.evaluate("document.getElementById('pv-similar-head').scrollIntoView()")
            time.sleep(0.5)
            args.out.mkdir(parents=True, exist_ok=True)
            page.locator(".pv-side").screenshot(path=str(args.out / f"similar-{mode}.png"))
            print(f"{mode}: saved after {time.monotonic() - started:.1f} s")
        browser.close()
    app.state.scheduler.close()


if __name__ == "__main__":
    main()
