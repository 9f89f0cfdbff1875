"""Make the README screenshot of the web interface on a real model (not a test; run by hand).

    TORCH_HOME=... python -m tests.serve.screenshot [--model mobilenet_v2] [--out docs/img/serve.png]

Starts the server in-process, opens a unit in headless Chromium, waits until the grid thumbnails in view and
the large image are rendered, and saves a 1366x800 screenshot.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.serve.shots import shot_options, shot_page


def main() -> None:
    parser = shot_options(__doc__, out=Path("docs/img/serve.png"), timeout=1200, index=False)
    parser.add_argument("--view", default="layer=features.9&unit=17&method=lucid&size=224&steps=128&seed=0&grid=64")
    args = parser.parse_args()
    with shot_page(args.model, width=1366, height=800) as shot:
        page = shot.page
        started = time.monotonic()
        page.goto(f"{shot.base}/#model={shot.model.name}&{args.view}")
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


if __name__ == "__main__":
    main()
