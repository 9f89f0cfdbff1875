"""A stored map read against the index as it is now: which image ids are on it, where, in which cluster, and
what the interface and the static page need per point (titles, artists, dates, metadata facets)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from imagemachines.collection_map.store import list_maps, load_map, map_dir, sha_keys
from imagemachines.collection_map.vectors import source_for
from imagemachines.errors import UserError

YEAR = re.compile(r"(?<!\d)(\d{3,4})(?!\d)")
TEXT_LIMIT = 160  # characters of a title or an artist shipped per point


@dataclass
class MapView:
    """A map aligned with the index's current rows: point *i* is image ``ids[i]`` at ``xy[i]``.

    *missing*: indexed images the map does not hold yet (added since it was made: run ``imagemachines map``
    again); *stale*: the index changed since the map was written.
    """

    name: str
    meta: dict
    ids: np.ndarray
    xy: np.ndarray
    cluster: np.ndarray
    placed: np.ndarray
    missing: int
    stale: bool
    clusters: list[dict] = field(default_factory=list)

    @property
    def layer(self) -> str:
        return str(self.meta["source"]["layer"])

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def cluster_ids(self, number: int) -> np.ndarray:
        """Image ids of cluster *number*."""
        if not any(c["number"] == number for c in self.clusters):
            raise UserError(f"Map {self.name!r} has no cluster {number}; it has "
                            f"{len(self.clusters)} (0 to {len(self.clusters) - 1}).")
        return self.ids[self.cluster == number]

    def inside(self, polygon: np.ndarray) -> np.ndarray:
        """Image ids of the points inside *polygon* ([k, 2] map coordinates, k ≥ 3; even-odd rule)."""
        from matplotlib.path import Path as Polygon

        polygon = np.asarray(polygon, dtype=np.float64)
        if polygon.ndim != 2 or polygon.shape[1] != 2 or polygon.shape[0] < 3 or not np.all(np.isfinite(polygon)):
            raise UserError("A selection outline needs at least 3 finite (x, y) points.")
        return self.ids[Polygon(polygon).contains_points(self.xy)]


def open_map(index, name: str | None = None, images=None) -> MapView:
    """The map *name* (a layer; default: the deepest pooled layer's, else the only one) of *index*, aligned with
    its current images (*images*: ``index.images()`` when the caller has it already)."""
    names = list_maps(index.path)
    if not names:
        raise UserError(f"The index in {index.path} has no map yet. Make one with `imagemachines map {index.path}`.")
    if name is None:
        default = source_for(index).name
        name = default if default in names else names[0]
    if name not in names:
        raise UserError(f"The index in {index.path} has no map {name[:80]!r}; it has: {', '.join(names)}. Make it "
                        f"with `imagemachines map {index.path} --layer {name[:80]}`.")
    stored = load_map(map_dir(index.path, name))
    images = index.images() if images is None else images
    where = {key: i for i, key in enumerate(sha_keys(stored.sha256))}
    rows = np.array([where.get(bytes.fromhex(im.sha256), -1) for im in images], dtype=np.int64)
    present = rows >= 0
    ids = np.array([im.id for im in images], dtype=np.int64)[present]
    rows = rows[present]
    return MapView(name, stored.meta, ids, stored.xy[rows], stored.cluster[rows], stored.placed[rows],
                   int((~present).sum()), stored.meta.get("index_updated") != index.manifest.get("updated"),
                   list(stored.meta.get("clusters", [])))


def first_year(text: str) -> int | None:
    m = YEAR.search(text or "")
    return int(m.group(1)) if m else None


def _clip(text: str | None) -> str:
    text = (text or "").strip()
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT - 1] + "…"


def points(view: MapView, images, facets) -> dict:
    """Per point, in the map's order: position, cluster, image id, title, artist, date text, year, and every
    metadata facet as codes into its list of values (-1: no value). Compact: arrays, not objects."""
    from imagemachines.serve.collection import display_meta

    by_id = {im.id: im for im in images}
    shown = [display_meta(by_id[int(i)].meta) for i in view.ids]
    years = [first_year(m["date"] or "") for m in shown]
    ids = view.ids
    return {
        "n": len(view), "image_id": ids.tolist(),
        "x": np.round(view.xy[:, 0].astype(np.float64), 5).tolist(),
        "y": np.round(view.xy[:, 1].astype(np.float64), 5).tolist(),
        "cluster": view.cluster.astype(int).tolist(), "placed": view.placed.astype(int).tolist(),
        "title": [_clip(m["title"] or by_id[int(i)].path) for m, i in zip(shown, ids, strict=True)],
        "artist": [_clip(m["artist"]) for m in shown], "date": [_clip(m["date"]) for m in shown],
        "year": years,
        "facets": [{"name": f.name, "values": [_clip(v) for v in f.values], "codes": f.codes[ids].astype(int).tolist(),
                    "provenance": f.provenance} for f in facets],
    }
