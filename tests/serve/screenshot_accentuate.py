"""Make the docs screenshot of accentuation in the interface on a real model and index (not a test; run by hand).

    imagemachines index mobilenet_v2 ../shared/data/paintings/images --metadata ../shared/data/paintings/labels.csv \\
        --out /tmp/paintings-index
    TORCH_HOME=... python -m tests.serve.screenshot_accentuate --index /tmp/paintings-index

Starts the server in-process with the index, opens a unit with one of its paintings and that painting's
accentuation for the unit (``acc=1`` in the address, as a shared link would), waits until the accentuation is
done and saves ``docs/img/accentuate-interface.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.serve.shots import shot_options, shot_page


def main() -> None:
    parser = shot_options(__doc__, out=Path("docs/img/accentuate-interface.png"), timeout=3600)
    parser.add_argument("--painting", default="portrait/B_203.jpg", help="Path of the painting in the index.")
    parser.add_argument("--view", default="layer=features.16&unit=150&method=lucid&size=224&steps=96&seed=0&grid=48")
    args = parser.parse_args()
    timeout = args.timeout * 1000
    with shot_page(args.model, args.index) as shot:
        page, index = shot.page, shot.index
        image_id = next(i.id for i in index.images() if i.path == args.painting)
        [served] = page.request.get(f"{shot.base}/api/indexes").json()
        started = time.monotonic()
        page.goto(f"{shot.base}/#model={shot.model.name}&{args.view}&index={served['id']}&image={image_id}&acc=1")
        page.wait_for_selector("#painting:not([hidden]) #pv-units .pv-unit", timeout=timeout)
        page.wait_for_selector("#acc-img[data-state=done]", timeout=timeout)
        page.wait_for_function("document.getElementById('acc-img').naturalWidth > 0", timeout=timeout)
        print(f"accentuation done after {time.monotonic() - started:.1f} s: {page.inner_text('#acc-status')}")
        time.sleep(1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        print(f"saved {args.out}; view: {page.url}")


if __name__ == "__main__":
    main()
