"""``map.html``: a map as a static page that works offline from ``file://`` (the map command's, and the atlas's
``--map``): the paintings as thumbnails (sprite sheets beside the page), pan and zoom, colour and filter by any
metadata column, search, the clusters and their labels, and lasso selection with the selection's metadata counts.
Contrasts of a selection need the pooled activations, so they live in the interface (`serve --index`).

The page's data is JSON inside the page (``<script type="application/json">``, escaped by Jinja's ``tojson``);
its scripts and style are files copied beside it from the interface's ``static/`` folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from imagemachines.collection_map.sprites import geometry, make_sheet, sheet_count, sheet_paths
from imagemachines.collection_map.view import open_map, points
from imagemachines.fileio import atomic_write
from imagemachines.report import write_html

STATIC = Path(__file__).resolve().parents[1] / "serve" / "static"
ASSETS = ("mapcanvas.js", "mappage.js", "map.css")
SHEETS = "sheets.json"


def write_sheets(index, view, folder: Path, progress: bool = True) -> int:
    """The sprite sheets of *view* into *folder* (``sheet-N.jpg``); a sheet whose paintings did not change since
    the last run is kept. Returns how many were written."""
    from tqdm.auto import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    record = folder / SHEETS
    try:
        before = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
    except (OSError, ValueError):
        before = {}
    shas = {im.id: im.sha256 for im in index.images()}
    digests, written = {}, 0
    count = sheet_count(len(view))
    for s in tqdm(range(count), desc="sprite sheets", unit="sheet", disable=not progress or count < 2):
        ids = view.ids[s * 4096:(s + 1) * 4096]
        digest = hashlib.sha256("".join(shas[int(i)] for i in ids).encode()).hexdigest()[:32]
        digests[str(s)] = digest
        dest = folder / f"sheet-{s}.jpg"
        if before.get(str(s)) == digest and dest.is_file():
            continue
        sheet = make_sheet(sheet_paths(index, view.ids, s))
        atomic_write(dest, lambda tmp, sheet=sheet: sheet.save(tmp, format="JPEG", quality=82))
        written += 1
    for stale in folder.glob("sheet-*.jpg"):
        if stale.stem.split("-")[-1] not in digests:
            stale.unlink()
    text = json.dumps(digests, indent=1)
    atomic_write(record, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return written


def page_data(index, view, images=None, *, unit_href=None, file_links: bool = True) -> dict:
    """What the page's script reads: points, clusters, sheet geometry, and how to link units and paintings
    (*unit_href(layer, channel)*: a cluster unit's link, or None for none)."""
    from imagemachines.index.enrichment import collection_facets

    images = index.images() if images is None else images
    data = points(view, images, collection_facets(images))
    clusters = [{**c, "units": [{**u, "href": unit_href(view.layer, u["channel"]) if unit_href else None}
                                for u in c["units"]]} for c in view.clusters]
    data.update(geometry=geometry(), clusters=clusters, layer=view.layer, name=view.name,
                model=index.model_name, n_unclustered=view.meta.get("n_unclustered", 0),
                neighbourhood=view.meta.get("neighbourhood", {}), missing=view.missing)
    if file_links:
        by_id = {im.id: im for im in images}
        data["href"] = [(index.image_root / by_id[int(i)].path).resolve().as_uri() for i in view.ids]
    return data


def write_map_page(index, name: str | None, folder: Path, *, title: str | None = None, unit_href=None,
                   file_links: bool = True, back: str | None = None, progress: bool = True) -> Path:
    """``folder/map.html`` with its sheets and scripts for the map *name* of *index*; returns the page."""
    folder = Path(folder)
    images = index.images()
    view = open_map(index, name, images)
    write_sheets(index, view, folder, progress)
    for asset in ASSETS:
        shutil.copyfile(STATIC / asset, folder / asset)
    data = page_data(index, view, images, unit_href=unit_href, file_links=file_links)
    from imagemachines.serve.collection_api import folder_name

    name = folder_name(index.image_root)
    return write_html(folder / "map.html", "map_page.html", title=title or f"Map of {name}", data=data, view=view,
                      model=index.model_name, folder=name, back=back)
