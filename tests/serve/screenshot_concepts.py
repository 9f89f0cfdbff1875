"""Make the docs screenshot of the Concepts view on a real run and index (not a test; run by hand).

    imagemachines index RUN ../shared/data/paintings/images --metadata ../shared/data/paintings/labels.csv \\
        --layers features.18,logits --out /tmp/paintings-index
    python -m tests.serve.screenshot_concepts --model RUN --index /tmp/paintings-index --class portrait \\
        [--cache-dir DIR] [--activations CACHE]

Starts the server in-process with the index, asks for the class's concepts in the Concepts view, follows the
study to its end, opens the first concept, and saves ``docs/img/concepts-view.png``. ``--activations`` seeds the
server's activation cache with the cache of an earlier ``imagemachines concepts`` run (the same files).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from tests.serve.shots import shot_options, shot_page

LOADED = "(() => {{ const i = [...document.querySelectorAll('{0}')]; return i.length && i.every(x => x.complete); }})()"


def main() -> None:
    parser = shot_options(__doc__, out=Path("docs/img/concepts-view.png"), timeout=7200, model=None)
    parser.add_argument("--class", dest="name", default="portrait")
    parser.add_argument("--concept", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--activations", type=Path, default=None)
    args = parser.parse_args()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="imagemachines-shot-"))
    if args.activations and not (cache / "concepts" / "activations").exists():
        shutil.copytree(args.activations, cache / "concepts" / "activations")
    timeout = args.timeout * 1000
    with shot_page(args.model, args.index, height=1000, cache_dir=cache) as shot:
        page = shot.page
        started = time.monotonic()
        page.goto(f"{shot.base}/#view=concepts&class={args.name}")
        page.wait_for_selector("#cx-start, .cx-row", timeout=timeout)
        if page.query_selector("#cx-start"):
            page.click("#cx-start")
        while not page.query_selector(".cx-row"):
            stage = page.query_selector("#cx-stage")
            print(f"{time.monotonic() - started:6.0f} s  {stage.inner_text() if stage else ''}", flush=True)
            time.sleep(30)
            if time.monotonic() - started > args.timeout:
                raise SystemExit("the study did not finish in time")
        page.click(f".cx-row[data-rank='{args.concept}']")
        page.wait_for_selector(f"#cx-detail[data-rank='{args.concept}']")
        for selector in ("#cx-detail .cx-crops img", "#cx-detail .cx-maps img", ".cx-row img"):
            page.wait_for_function(LOADED.format(selector), timeout=timeout, polling=500)
        page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
        time.sleep(2)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        print(f"saved {args.out} after {time.monotonic() - started:.0f} s; view: {page.url}; cache: {cache}")


if __name__ == "__main__":
    main()
