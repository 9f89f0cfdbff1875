"""Make the docs screenshot of accentuation in the interface on a real model and index (not a test; run by hand).

    imagemachines index mobilenet_v2 ../shared/data/paintings/images --metadata ../shared/data/paintings/labels.csv \\
        --out /tmp/paintings-index
    TORCH_HOME=... python -m tests.serve.screenshot_accentuate --index /tmp/paintings-index

Starts the server in-process with the index, opens a unit with one of its paintings and that painting's
accentuation for the unit (``acc=1`` in the address, as a shared link would), waits until the accentuation is
done and saves ``docs/img/accentuate-interface.png``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--painting", default="portrait/B_203.jpg", help="Path of the painting in the index.")
    parser.add_argument("--view", default="layer=features.16&unit=150&method=lucid&size=224&steps=96&seed=0&grid=48")
    parser.add_argument("--out", type=Path, default=Path("docs/img/accentuate-interface.png"))
    parser.add_argument("--timeout", type=float, default=3600)
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
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        [served] = page.request.get(f"{base}/api/indexes").json()
        started = time.monotonic()
        page.goto(f"{base}/#model={model.name}&{args.view}&index={served['id']}&image={image_id}&acc=1")
        page.wait_for_selector("#painting:not([hidden]) #pv-units .pv-unit", timeout=timeout)
        page.wait_for_selector("#acc-img[data-state=done]", timeout=timeout)
        page.wait_for_function("document.getElementById('acc-img').naturalWidth > 0", timeout=timeout)
        print(f"accentuation done after {time.monotonic() - started:.1f} s: {page.inner_text('#acc-status')}")
        time.sleep(1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        print(f"saved {args.out}; view: {page.url}")
        browser.close()
    app.state.scheduler.close()


if __name__ == "__main__":
    main()
