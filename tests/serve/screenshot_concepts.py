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

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from imagemachines.index import open_index
from imagemachines.models import load_model
from imagemachines.serve.app import create_app
from tests.serve.browsing import ARGS, CHROMIUM
from tests.serve.conftest import live_server

LOADED = "(() => {{ const i = [...document.querySelectorAll('{0}')]; return i.length && i.every(x => x.complete); }})()"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--class", dest="name", default="portrait")
    parser.add_argument("--concept", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--activations", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/img/concepts-view.png"))
    parser.add_argument("--timeout", type=float, default=7200)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    model = load_model(args.model)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="imagemachines-shot-"))
    if args.activations and not (cache / "concepts" / "activations").exists():
        shutil.copytree(args.activations, cache / "concepts" / "activations")
    app = create_app({model.name: model}, cache_dir=cache, indexes=[open_index(args.index)])
    timeout = args.timeout * 1000
    with live_server(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        started = time.monotonic()
        page.goto(f"{base}/#view=concepts&class={args.name}")
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
        browser.close()
    app.state.scheduler.close()
    app.state.concept_jobs.close()


if __name__ == "__main__":
    main()
