"""Make the docs screenshots of the Map view on a real model and index (not a test; run by hand).

    imagemachines index mobilenet_v2 ../shared/data/paintings/images --metadata ../shared/data/paintings/labels.csv \\
        --out /tmp/paintings-index
    imagemachines map /tmp/paintings-index
    TORCH_HOME=... python -m tests.serve.screenshot_map --index /tmp/paintings-index --cluster portrait

Starts the server in-process with the index, opens the map (``docs/img/map.png``), draws a lasso round the
first cluster whose label starts with ``--cluster`` (with the mouse, as a user does), waits for the contrast and
its unit renders (``docs/img/map-contrast.png``), then opens the first unit (``docs/img/map-unit.png``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from tests.serve.shots import shot_options, shot_page

# the screen outline (CSS px) of an ellipse round cluster `c`'s paintings
OUTLINE = """(c) => {
  const m = window.mapCanvas, d = m.data, box = m.canvas.getBoundingClientRect(), k = box.width / m.canvas.width;
  const pts = [];
  d.cluster.forEach((x, i) => { if (x === c) pts.push(m.toScreen(d.x[i], d.y[i])); });
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const cx = (Math.min(...xs) + Math.max(...xs)) / 2, cy = (Math.min(...ys) + Math.max(...ys)) / 2;
  const rx = (Math.max(...xs) - Math.min(...xs)) / 2 + 12, ry = (Math.max(...ys) - Math.min(...ys)) / 2 + 12;
  return { left: box.left, top: box.top, k, cx, cy, rx, ry };
}"""


def lasso(page, cluster: int, steps: int = 48) -> None:
    g = page.evaluate(OUTLINE, cluster)
    points = [(g["left"] + (g["cx"] + g["rx"] * math.cos(2 * math.pi * i / steps)) * g["k"],
               g["top"] + (g["cy"] + g["ry"] * math.sin(2 * math.pi * i / steps)) * g["k"]) for i in range(steps + 1)]
    page.click("#view-map .map-modes [data-mode=lasso]")
    page.mouse.move(*points[0])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x, y)
    page.mouse.up()


def main() -> None:
    parser = shot_options(__doc__, out=Path("docs/img"), timeout=1800)
    parser.add_argument("--cluster", default="portrait", help="Lasso the first cluster whose label starts so.")
    args = parser.parse_args()
    timeout = args.timeout * 1000
    args.out.mkdir(parents=True, exist_ok=True)
    with shot_page(args.model, args.index) as shot:
        page = shot.page
        started = time.monotonic()
        page.goto(f"{shot.base}/#view=map")
        page.wait_for_function("document.getElementById('mv-canvas')?.dataset.ready === '1'", timeout=timeout)
        print(f"map shown after {time.monotonic() - started:.1f} s")
        time.sleep(0.5)
        page.screenshot(path=str(args.out / "map.png"))
        number = page.evaluate("(w) => (mapCanvas.data.clusters.find((c) => (c.value || '').startsWith(w)) || "
                               "mapCanvas.data.clusters[0]).number", args.cluster)
        lasso(page, number)
        page.wait_for_selector("#mv-units[data-state=done]", timeout=timeout)
        page.wait_for_function("[...document.querySelectorAll('#mv-units img')].every(i => i.complete && "
                               "i.naturalWidth > 0)", timeout=timeout, polling=1000)
        print(f"contrast and renders after {time.monotonic() - started:.1f} s: {page.url}")
        time.sleep(0.5)
        page.screenshot(path=str(args.out / "map-contrast.png"))
        page.click("#mv-units .mc-unit")
        page.wait_for_selector("#ex-grid[data-state=done]", timeout=timeout)
        page.wait_for_function("[...document.querySelectorAll('#ex-grid img')].every(i => i.complete && "
                               "i.naturalWidth > 0) && document.getElementById('detail-img').dataset.state === "
                               "'done'", timeout=timeout, polling=1000)
        time.sleep(0.5)
        page.screenshot(path=str(args.out / "map-unit.png"))


if __name__ == "__main__":
    main()
