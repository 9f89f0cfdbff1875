"""What the docs' screenshot scripts share (they are not tests; each is run by hand): their common options, and
a live server on the real model (and a collection index) with a Chromium page on it."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imagemachines.models import DEFAULT_MODEL


def shot_options(doc: str, *, out: Path, timeout: float, index: bool = True,
                 model: str | None = DEFAULT_MODEL) -> argparse.ArgumentParser:
    """The options every screenshot script takes: --model (required when *model* is None), --index (with
    *index*), --out and --timeout (seconds); the script adds its own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--model", default=model, required=model is None)
    if index:
        parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--timeout", type=float, default=timeout)
    return parser


@dataclass
class Shot:
    """A page on a live server: its address, the page, and what the server serves."""

    base: str
    page: object  # playwright's Page
    model: object  # LoadedModel
    index: object | None  # CollectionIndex


@contextmanager
def shot_page(model_name: str, index_path: Path | None = None, *, width: int = 1440, height: int = 900,
              cache_dir: Path | None = None) -> Iterator[Shot]:
    """A live server on *model_name* (and the index at *index_path*) with a Chromium page of *width* × *height*
    on it; the browser and the server's scheduler are closed afterwards."""
    from playwright.sync_api import sync_playwright

    from imagemachines.index import open_index
    from imagemachines.models import load_model
    from imagemachines.serve.app import create_app
    from tests.serve.browsing import ARGS, CHROMIUM
    from tests.serve.conftest import live_server

    model = load_model(model_name)
    index = open_index(index_path) if index_path is not None else None
    app = create_app({model.name: model}, cache_dir=cache_dir or Path(tempfile.mkdtemp(prefix="imagemachines-shot-")),
                     **({"indexes": [index]} if index is not None else {}))
    try:
        with live_server(app) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                yield Shot(base, browser.new_page(viewport={"width": width, "height": height}), model, index)
            finally:
                browser.close()
    finally:
        app.state.scheduler.close()
