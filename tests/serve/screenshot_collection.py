"""Make the docs screenshots of the collection views on a real model and index (not a test; run by hand).

    imagemachines index mobilenet_v2 ../shared/data/paintings/images --metadata ../shared/data/paintings/labels.csv \\
        --out /tmp/paintings-index
    TORCH_HOME=... python -m tests.serve.screenshot_collection --index /tmp/paintings-index

Starts the server in-process with the index, opens a unit (its render beside its top paintings, heat overlays
on), saves ``docs/img/collection-unit.png``; then opens the unit's best painting large and saves
``docs/img/collection-painting.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.serve.shots import shot_options, shot_page

ALL_IMAGES_SHOWN = "[...document.querySelectorAll('{0} img')].every(i => i.complete && i.naturalWidth > 0)"


def main() -> None:
    parser = shot_options(__doc__, out=Path("docs/img"), timeout=1800)
    parser.add_argument("--view", default="layer=features.16&unit=150&method=lucid&size=224&steps=96&seed=0&grid=48")
    args = parser.parse_args()
    timeout = args.timeout * 1000
    with shot_page(args.model, args.index) as shot:
        page = shot.page
        started = time.monotonic()
        page.goto(f"{shot.base}/#model={shot.model.name}&{args.view}")
        page.wait_for_selector("#ex-grid[data-state=done]", timeout=timeout)
        page.wait_for_function(ALL_IMAGES_SHOWN.format("#ex-grid"), timeout=timeout, polling=500)
        print(f"paintings shown after {time.monotonic() - started:.1f} s")
        page.wait_for_selector("#detail-img[data-state=done]", timeout=timeout)
        print(f"render done after {time.monotonic() - started:.1f} s")
        time.sleep(1)
        args.out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out / "collection-unit.png"))

        page.click("#ex-grid .ex-card")
        page.wait_for_selector("#painting:not([hidden]) #pv-units .pv-unit", timeout=timeout)
        page.wait_for_function("document.getElementById('pv-img').complete", timeout=timeout)
        page.wait_for_function(ALL_IMAGES_SHOWN.format("#pv-units .pv-unit .pv-heat") + " && " +
                               ALL_IMAGES_SHOWN.format("#pv-similar"), timeout=timeout, polling=500)
        page.wait_for_function(  # the renders of its first units
            "[...document.querySelectorAll('#pv-units .pv-render')].slice(0, 6).every(i => i.naturalWidth > 0)",
            timeout=timeout, polling=1000)
        time.sleep(1)
        page.screenshot(path=str(args.out / "collection-painting.png"))
        print(f"saved {args.out}/collection-*.png after {time.monotonic() - started:.1f} s; view: {page.url}")


if __name__ == "__main__":
    main()
