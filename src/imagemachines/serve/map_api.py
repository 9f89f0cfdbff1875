"""The map routes: an index's maps, a map's points and clusters, its sprite sheets, and the contrast of a
selection ("what sets this group apart"). Maps are made by `imagemachines map INDEX`; the server only reads them.

Everything is addressed by index id, map name and numbers: the files behind them come from the index folder and
the server's own cache. The contrast is computed from the index's pooled activations (no forward pass), at most
:data:`CONTRASTS_AT_ONCE` at a time; the standardized activations of a few maps are kept in memory (bounded).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi import Path as PathParam

from imagemachines.errors import UserError
from imagemachines.serve.collection import ServedIndex, display_meta
from imagemachines.serve.guard import refuse_cross_site
from imagemachines.serve.lru import BoundedLRU
from imagemachines.serve.map_schemas import (
    ContrastExample,
    ContrastIn,
    ContrastOut,
    ContrastUnit,
    MapSummary,
    MetadataValue,
    Selection,
)
from imagemachines.serve.schemas import Problem
from imagemachines.serve.sprite_cache import SpriteCache

ERRORS = {404: {"model": Problem}, 422: {"model": Problem}}
CONTRASTS_AT_ONCE = 2
MapName = Annotated[str, PathParam(max_length=200, pattern=r"^[A-Za-z0-9_.:@-]+$")]
Sheet = Annotated[int, PathParam(ge=0, le=10_000)]


class MapState:
    """What the routes keep between requests, all bounded: opened maps with their point payloads, the
    standardized activations of recent layers, the sprite sheets on disk."""

    def __init__(self, cache_dir: Path, *, sprite_bytes: int = 512 * 2**20, prepared_bytes: int = 640 * 2**20):
        self.views: BoundedLRU = BoundedLRU(16, 2**62, size_of=lambda _v: 1)
        self.prepared: BoundedLRU = BoundedLRU(4, prepared_bytes, size_of=lambda p: p.nbytes)
        self.sprites = SpriteCache(Path(cache_dir) / "sprites", sprite_bytes)
        self.contrasts = threading.BoundedSemaphore(CONTRASTS_AT_ONCE)
        self._lock = threading.Lock()


def build_map_router(indexes: Mapping[str, ServedIndex], cache_dir: Path) -> APIRouter:
    from imagemachines.collection_map.store import META, list_maps, map_dir

    router = APIRouter(tags=["maps"])
    state = MapState(cache_dir)

    def served(index_id: str) -> ServedIndex:
        if index_id not in indexes:
            known = ", ".join(indexes) or "none (start the server with --index DIR)"
            raise HTTPException(404, f"No index {index_id!r} on this server. Indexes: {known}.")
        return indexes[index_id]

    def opened(s: ServedIndex, name: str) -> dict:
        """The map *name* of *s*: its view, the index's images and facets, and the page payload (cached; a map
        rewritten on disk is read again)."""
        from imagemachines.collection_map.page import page_data
        from imagemachines.collection_map.view import open_map
        from imagemachines.index.enrichment import collection_facets

        if name not in list_maps(s.index.path):
            have = ", ".join(list_maps(s.index.path)) or "none yet"
            raise HTTPException(404, f"Index {s.id!r} has no map {name!r} (maps: {have}). Make one with "
                                     f"`imagemachines map {s.index.path} --layer LAYER`.")
        try:
            stamp = (map_dir(s.index.path, name) / META).stat().st_mtime_ns
        except OSError:
            raise HTTPException(404, f"The map {name!r} of index {s.id!r} was just removed.") from None

        def load() -> dict:
            images = s.index.images()
            view = open_map(s.index, name, images)
            facets = collection_facets(images)
            data = page_data(s.index, view, images, file_links=False,
                             unit_href=lambda layer, c: f"#model={s.model.name}&layer={layer}&unit={c}&index={s.id}")
            data.update(index=s.id, sheets=int(np.ceil(len(view) / data["geometry"]["per_sheet"])) or 1,
                        sprite_key=SpriteCache.key(str(s.index.path), name, stamp))
            return {"view": view, "images": images, "facets": facets, "payload": data}

        return state.views.get_or_make((s.id, name, stamp), load)

    def prepared(s: ServedIndex, layer: str):
        from imagemachines.collection_map.contrast import standardize

        def load():
            values = s.index.pooled(layer)
            if values is None:
                raise HTTPException(422, f"Index {s.id!r} was built with --no-pooled: contrasts need pooled "
                                         "activations.")
            return standardize(values)

        return state.prepared.get_or_make((s.id, layer, s.index.manifest.get("updated")), load)

    def ids_of(m: dict, sel: Selection) -> np.ndarray:
        view = m["view"]
        try:
            if sel.polygon is not None:
                return view.inside(np.asarray(sel.polygon))
            if sel.cluster is not None:
                return view.cluster_ids(sel.cluster)
        except UserError as exc:
            raise HTTPException(422, str(exc)) from None
        ids = np.unique(np.asarray(sel.ids, dtype=np.int64))
        if not np.isin(ids, view.ids).all():
            raise HTTPException(422, "Some ids are not paintings on this map; take ids from the map's image_id list.")
        return ids

    # -- routes -----------------------------------------------------------------------------------------------
    @router.get("/api/indexes/{index_id}/maps", response_model=list[MapSummary], responses=ERRORS)
    def list_index_maps(index_id: str) -> list[MapSummary]:
        """The maps made for an index (`imagemachines map INDEX`)."""
        s = served(index_id)
        out = []
        for name in list_maps(s.index.path):
            m = opened(s, name)
            view = m["view"]
            out.append(MapSummary(name=name, layer=view.layer, description=view.meta["source"]["description"],
                                  n=len(view), missing=view.missing, stale=view.stale, clusters=len(view.clusters),
                                  neighbourhood=view.meta.get("neighbourhood", {}).get("kept"),
                                  settings=view.meta.get("settings", {}), updated=view.meta.get("updated")))
        return out

    @router.get("/api/indexes/{index_id}/maps/{name}", responses=ERRORS)
    def map_points(index_id: str, name: MapName) -> dict:
        """Every painting of the map, as parallel arrays: `image_id`, `x`, `y` (unit square), `cluster` (-1:
        none), `title`, `artist`, `date`, `year`, and `facets` (each metadata column as `values` and per-point
        `codes`, -1: no value); `clusters` with their labels; `geometry` and `sheets` of the sprite sheets."""
        s = served(index_id)
        return opened(s, name)["payload"]

    @router.get("/api/indexes/{index_id}/maps/{name}/sprites/{sheet}.jpg", dependencies=[Depends(refuse_cross_site)],
                responses={200: {"content": {"image/jpeg": {}}}, **ERRORS})
    def map_sprites(index_id: str, name: MapName, sheet: Sheet) -> Response:
        """Sprite sheet `sheet` of the map: 64 × 64 cells of 32 px, point i in cell i mod 4096 of sheet
        i div 4096 (made from the index's images on first use, then kept on disk)."""
        from imagemachines.collection_map.sprites import sheet_jpeg

        s = served(index_id)
        m = opened(s, name)
        payload = m["payload"]
        if sheet >= payload["sheets"]:
            raise HTTPException(404, f"Map {name!r} has {payload['sheets']} sprite sheets (0 to "
                                     f"{payload['sheets'] - 1}).")
        data = state.sprites.get_or_make(SpriteCache.key(payload["sprite_key"], sheet),
                                         lambda: sheet_jpeg(s.index, m["view"].ids, sheet))
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @router.post("/api/indexes/{index_id}/maps/{name}/contrast", response_model=ContrastOut, max_body_size=2**20,
                 responses={**ERRORS, 503: {"model": Problem, "description": "Too many contrasts at once."}})
    def map_contrast(index_id: str, name: MapName, body: ContrastIn) -> ContrastOut:
        """What sets a selection apart: the layer's units whose pooled activation differs most between the
        selection and the rest of the map (or a second selection), with Cohen's d and a permutation p-value
        adjusted over all units; each with its top paintings inside the selection. And the selection's
        metadata: values over-represented in it, each column's majority, photo-source warnings."""
        from imagemachines.collection_map.contrast import contrast, top_in_group
        from imagemachines.index.enrichment import enrich, majority, provenance_warnings, significant

        s = served(index_id)
        m = opened(s, name)
        view = m["view"]
        group = ids_of(m, body.selection)
        whole = body.against is None and len(view) == s.index.n_images  # the rest is every other painting
        other = None if whole else (ids_of(m, body.against) if body.against is not None
                                    else view.ids[~np.isin(view.ids, group)])
        if not state.contrasts.acquire(timeout=15):
            raise HTTPException(503, "Too many contrasts are being computed; try again in a moment.",
                                headers={"Retry-After": "2"})
        try:
            t0 = time.perf_counter()
            try:
                result = contrast(prepared(s, view.layer), group, against=other, permutations=body.permutations,
                                  seed=body.seed)
            except UserError as exc:
                raise HTTPException(422, str(exc)) from None
            values = s.index.pooled(view.layer)
            images = m["images"]
            units = []
            for u in result.top(body.k, body.direction):
                examples = [ContrastExample(image_id=i, value=v,
                                            title=display_meta(images[i].meta)["title"] or images[i].path,
                                            thumb=f"/api/indexes/{s.id}/images/{i}/thumb")
                            for i, v in top_in_group(values, group, u.channel, body.examples)]
                units.append(ContrastUnit(channel=u.channel, d=u.d, p=None if np.isnan(u.p) else u.p,
                                          mean_in=u.mean_in, mean_out=u.mean_out, examples=examples,
                                          examples_link=f"/api/indexes/{s.id}/units/{view.layer}/{u.channel}"))
            facets = m["facets"]
            enriched = enrich(facets, group, against=other)
            over = [_value(e) for e in significant(enriched)[:12]]
            warn = [_value(e) for e in provenance_warnings(enriched)]
            tops = []
            for f in facets:
                top = majority(f, group)
                if top is not None:
                    known = int((f.codes[group] >= 0).sum())
                    tops.append(MetadataValue(facet=f.name, value=top[0], in_group=round(top[1] * known),
                                              group=known, share=top[1], provenance=f.provenance))
            return ContrastOut(index=s.id, map=name, layer=view.layer, n_in=result.n_in, n_out=result.n_out,
                               against="rest" if body.against is None else "selection",
                               permutations=result.permutations, seed=result.seed,
                               seconds=round(time.perf_counter() - t0, 3), units=units, over_represented=over,
                               majority=tops, provenance=warn)
        finally:
            state.contrasts.release()

    return router


def _value(e) -> MetadataValue:
    return MetadataValue(facet=e.facet, value=e.value, in_group=e.in_group, group=e.group,
                         share=e.in_group / max(e.group, 1), ratio=e.ratio, p_adjusted=e.p_adjusted,
                         provenance=e.provenance)
