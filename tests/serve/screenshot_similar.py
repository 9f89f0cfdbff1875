"""Make the docs screenshots of one painting's similar paintings under each mode (not a test; run by hand).

    imagemachines index mobilenet_v2 ../shared/data/paintings/images --metadata ../shared/data/paintings/labels.csv \\
        --out /tmp/paintings-index
    TORCH_HOME=... python -m tests.serve.screenshot_similar --index /tmp/paintings-index --painting landscape/A_4_27.jpg

Starts the server in-process with the index, opens the painting, and for each mode (content, style,
composition) saves the side panel's similar paintings as ``docs/img/similar-MODE.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.serve.shots import shot_options, shot_page

SHOWN = "[...document.querySelectorAll('#pv-similar img')].every(i => i.complete && i.naturalWidth > 0)"


def main() -> None:
    parser = shot_options(__doc__, out=Path("docs/img"), timeout=900)
    parser.add_argument("--painting", required=True, help="the painting's path in the index")
    args = parser.parse_args()
    timeout = args.timeout * 1000
    with shot_page(args.model, args.index, height=1000) as shot:
        page, model, index = shot.page, shot.model, shot.index
        image_id = next(i.id for i in index.images() if i.path == args.painting)
        for mode in ("content", "style", "composition"):
            started = time.monotonic()
            page.goto("about:blank")  # a fresh page per mode: a hash change alone keeps the last mode's cards
            page.goto(f"{shot.base}/#model={model.name}&layer=features.18&method=lucid&size=224&steps=64&seed=0"
                      f"&grid=48&index={index.path.name}&image={image_id}&sim={mode}")
            page.wait_for_selector("#painting:not([hidden]) #pv-similar .ex-card", timeout=timeout)
            page.wait_for_function(SHOWN, timeout=timeout, polling=500)
            page.evaluate("document.getElementById('pv-similar-head').scrollIntoView()")
            time.sleep(0.5)
            args.out.mkdir(parents=True, exist_ok=True)
            page.locator(".pv-side").screenshot(path=str(args.out / f"similar-{mode}.png"))
            print(f"{mode}: saved after {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
