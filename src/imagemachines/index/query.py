"""Reading an index: :func:`open_index` → :class:`CollectionIndex` (examples, statistics, images, similarity)."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from pathlib import Path

import numpy as np

from imagemachines.errors import UnitOutOfRange, UnknownLayer, UserError, did_you_mean
from imagemachines.index.duplicates import duplicate_groups, hidden_copies
from imagemachines.index.peaks import LEGACY_RANKING, border_chance, has_border
from imagemachines.index.records import BorderStats, Example, ImageInfo, UnitStats
from imagemachines.index.scan import image_path
from imagemachines.index.store import (
    DATABASE,
    MANIFEST,
    layer_file,
    maxima_file,
    open_array,
    pooled_file,
    read_manifest,
)

LEGACY_NOTE = ("This index was made before imagemachines recorded where a unit's maximum lies: its examples are "
               "ranked over every cell of the map, border included (ranking 'full'), and how often each unit peaks "
               "on the border is unknown. Rebuild it (`imagemachines index … --rebuild`) to rank by the interior "
               "and see border units flagged.")

SAME_VALUE = 1e-5  # relative: float32 sums in another order (threads, batch size) differ by far less than this


class IndexError_(UserError):  # noqa: N801 - not the builtin IndexError
    """A missing, unfinished or damaged index."""


def open_index(path: Path | str) -> CollectionIndex:
    """The index in directory *path*; a clear :class:`UserError` when it is missing, unfinished or damaged."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise IndexError_(f"{path} is not an index folder. Make one with `imagemachines index MODEL IMAGE_DIR`.")
    if not (path / MANIFEST).is_file() or not (path / DATABASE).is_file():
        raise IndexError_(f"{path} holds no index ({MANIFEST} or {DATABASE} is missing). Make one with "
                          "`imagemachines index MODEL IMAGE_DIR --out …`.")
    try:
        manifest = read_manifest(path)
    except (OSError, ValueError) as exc:
        raise IndexError_(f"The manifest {path / MANIFEST} cannot be read ({exc}); rebuild the index.") from exc
    if not isinstance(manifest, dict) or "layers" not in manifest or "weights_id" not in manifest:
        raise IndexError_(f"{path / MANIFEST} is not an imagemachines index manifest; rebuild the index.")
    if not manifest.get("complete"):
        raise IndexError_(f"The index in {path} is unfinished (its build was interrupted or is running). Run the "
                          "same `imagemachines index` command again to complete it.")
    return CollectionIndex(path, manifest)


class CollectionIndex:
    """A finished index: per-unit examples and statistics, the image table, pooled activations."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self.image_root = Path(manifest["image_root"])
        self.model_name: str = manifest["model"]
        self.weights_id: str = manifest["weights_id"]
        self.layers: list[str] = list(manifest["layers"])
        self.k: int = int(manifest["k"])
        self.n_images: int = int(manifest["n_images"])
        self.ranking: str = manifest.get("ranking") or LEGACY_RANKING
        self.note: str | None = None if "ranking" in manifest else LEGACY_NOTE
        self._facets: list | None = None
        self._layer_cache: dict[str, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._copies: dict[int, int] | None = None

    def __repr__(self) -> str:
        return f"CollectionIndex({str(self.path)!r}, model={self.model_name!r}, images={self.n_images})"

    # -- images ----------------------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            uri = f"{(self.path / DATABASE).resolve().as_uri()}?mode=ro"
            conn = self._local.conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        return conn

    _COLS = "row, path, sha256, width, height, meta"

    @staticmethod
    def _info(r) -> ImageInfo:
        return ImageInfo(int(r[0]), r[1], r[2], int(r[3] or 0), int(r[4] or 0), json.loads(r[5] or "{}"))

    def image(self, image_id: int) -> ImageInfo:
        """The image with id *image_id* (0 … n_images-1)."""
        if not isinstance(image_id, (int, np.integer)) or not 0 <= int(image_id) < self.n_images:
            raise UnitOutOfRange(f"Image id {image_id} is out of range: this index holds images 0 to "
                                 f"{self.n_images - 1}.")
        r = self._db().execute(f"SELECT {self._COLS} FROM images WHERE row = ?", (int(image_id),)).fetchone()
        if r is None:
            raise IndexError_(f"Image {image_id} is missing from {self.path / DATABASE}; rebuild the index.")
        return self._info(r)

    def images(self) -> list[ImageInfo]:
        rows = self._db().execute(f"SELECT {self._COLS} FROM images WHERE row IS NOT NULL ORDER BY row")
        return [self._info(r) for r in rows]

    def image_file(self, image_id: int) -> Path:
        """The image's file: the path from the index's own table inside its image folder, links resolved.

        Every reader of the pictures goes through here: a row that is absolute or climbs out with ``..``, or a link
        that leads out to a file whose SHA-256 is not the one recorded, raises
        :class:`~imagemachines.index.scan.OutsideImageFolder` (the index is untrusted input).
        """
        info = self.image(image_id)
        return image_path(self.image_root, info.path, info.sha256)

    def duplicates(self) -> list[list[ImageInfo]]:
        """Groups of indexed files that are the same image (the same SHA-256), the one shown first."""
        groups = duplicate_groups(self._db())
        return [[self.image(row) for row, _ in group] for group in groups]

    def copies(self) -> dict[int, int]:
        """{id of a file that is a copy of an earlier one: the id shown in its place} (read once)."""
        if self._copies is None:
            self._copies = hidden_copies(duplicate_groups(self._db()))
        return self._copies

    def same_image(self, image_id: int) -> set[int]:
        """The ids of *image_id* and of every file that is the same image."""
        copies = self.copies()
        kept = copies.get(int(image_id), int(image_id))
        return {kept} | {c for c, k in copies.items() if k == kept}

    def unreadable(self) -> list[tuple[str, str]]:
        """(path, reason) of the files that could not be read."""
        return [tuple(r) for r in self._db().execute(
            "SELECT path, error FROM images WHERE status = 'bad' ORDER BY path")]

    # -- units -----------------------------------------------------------------------------------------------
    def check_layer(self, layer: str) -> None:
        if layer not in self.manifest["layers"]:
            raise UnknownLayer(f"The index has no layer {layer!r}.{did_you_mean(layer, self.layers)} Its layers "
                               f"are: {', '.join(self.layers)}. (Index more with `imagemachines index --layers`.)")

    def channels(self, layer: str) -> int:
        self.check_layer(layer)
        return int(self.manifest["layers"][layer])

    def check_unit(self, layer: str, channel: int) -> None:
        n = self.channels(layer)
        if not isinstance(channel, (int, np.integer)) or not 0 <= int(channel) < n:
            raise UnitOutOfRange(f"Layer {layer!r} has {n} units; unit {channel} is out of range (use 0 to {n - 1}).")

    def _layer(self, layer: str) -> dict[str, np.ndarray]:
        self.check_layer(layer)
        with self._lock:
            if layer not in self._layer_cache:
                from safetensors.numpy import load_file

                f = layer_file(self.path, layer)
                try:
                    self._layer_cache[layer] = load_file(str(f))
                except Exception as exc:  # noqa: BLE001 - a missing or damaged file: say so
                    raise IndexError_(f"The layer file {f} cannot be read ({exc}); rebuild the index.") from exc
            return self._layer_cache[layer]

    def _shape(self, layer: str) -> tuple[int, int]:
        shape = self.manifest.get("layer_shapes", {}).get(layer, [0, 1, 1])
        return int(shape[1]), int(shape[2])

    def box(self, layer: str, cell: tuple[int, int], width: int, height: int) -> tuple[int, int, int, int]:
        """The part of an image (*width* × *height* px) that feature-map *cell* (row, col) covers."""
        h, w = self._shape(layer)
        r, c = cell
        return (int(math.floor(c * width / w)), int(math.floor(r * height / h)),
                int(math.ceil((c + 1) * width / w)), int(math.ceil((r + 1) * height / h)))

    def examples(self, layer: str, channel: int, *, k: int | None = None, negative: bool = False) -> list[Example]:
        """The unit's top (or, *negative*, bottom) images by spatial maximum, best first; each painting once (a
        file that is a copy of an earlier one is left out, see :meth:`copies`), so at most the index's k."""
        self.check_unit(layer, channel)
        if k is not None and k < 1:
            raise UserError("k must be at least 1.")
        data = self._layer(layer)
        side = "bottom" if negative else "top"
        values, images, cells = (data[f"{side}_{n}"][channel] for n in ("value", "image", "cell"))
        n = len(values) if k is None else min(k, len(values))
        h, w = self._shape(layer)
        copies = self.copies()
        out: list[Example] = []
        for value, image_id, cell_index in zip(values, images, cells, strict=True):
            if len(out) == n:
                break
            if int(image_id) in copies:
                continue
            info = self.image(int(image_id))
            cell = (int(cell_index) // w, int(cell_index) % w)
            edge = has_border(h, w) and (cell[0] in (0, h - 1) or cell[1] in (0, w - 1))
            out.append(Example(len(out) + 1, info.id, float(value), cell,
                               self.box(layer, cell, info.width, info.height),
                               self.percentile(layer, channel, float(value)), edge))
        return out

    def example_ids(self, layer: str, channel: int, *, k: int | None = None, negative: bool = False) -> list[int]:
        """The image ids of the unit's top (or bottom) *k* (default: all the index kept), best first."""
        self.check_unit(layer, channel)
        ids = self._layer(layer)[f"{'bottom' if negative else 'top'}_image"][channel]
        return [int(i) for i in ids[:k]]

    def border(self, layer: str, channel: int) -> BorderStats | None:
        """How often the unit's maximum lies on the border of its map; None for an index made before that was
        recorded (see :attr:`note`)."""
        self.check_unit(layer, channel)
        d = self._layer(layer)
        if "border" not in d:
            return None
        h, w = self._shape(layer)
        chance = self.manifest.get("border_chance", {}).get(layer, border_chance(h, w))
        high = {name: float(d[name][channel]) if name in d and math.isfinite(float(d[name][channel])) else None
                for name in ("edge_high", "inner_high")}
        return BorderStats(int(d["border"][channel]), int(d["count"][0]), float(chance), **high)

    def border_units(self, layer: str) -> list[int]:
        """The flagged border units of *layer* (empty for an index without border counts)."""
        return [c for c in range(self.channels(layer)) if (b := self.border(layer, c)) is not None and b.flagged]

    def facets(self) -> list:
        """The collection's metadata facets (:func:`imagemachines.index.enrichment.collection_facets`), cached."""
        from imagemachines.index.enrichment import collection_facets

        with self._lock:
            if self._facets is None:
                self._facets = collection_facets(self.images())
            return self._facets

    def enrichment(self, layer: str, channel: int, *, k: int | None = None, negative: bool = False) -> list:
        """How over-represented each metadata value is among the unit's top (or bottom) *k* paintings (default:
        all the index kept) against the whole collection: :func:`imagemachines.index.enrichment.enrich`."""
        from imagemachines.index.enrichment import enrich

        if k is not None and k < 1:
            raise UserError("k must be at least 1.")
        return enrich(self.facets(), self.example_ids(layer, channel, k=k, negative=negative))

    def stats(self, layer: str, channel: int) -> UnitStats:
        self.check_unit(layer, channel)
        d = self._layer(layer)
        qs = self.manifest.get("quantiles", [])
        return UnitStats(float(d["mean"][channel]), float(d["std"][channel]), float(d["min"][channel]),
                         float(d["max"][channel]),
                         {float(q): float(v) for q, v in zip(qs, d["quantiles"][channel], strict=True)},
                         int(d["count"][0]))

    def percentile(self, layer: str, channel: int, value: float) -> float:
        """Percent of the collection whose spatial maximum for this unit is at most *value* (0 … 100).

        A value within :data:`SAME_VALUE` (relative) of the collection's maximum is at it (100): the same painting
        computed again, with another thread count or batch size, can come out that much lower, and must still
        read as the collection's best.
        """
        self.check_unit(layer, channel)
        d = self._layer(layer)
        lo, hi = float(d["min"][channel]), float(d["max"][channel])
        hist = d["histogram"][channel].astype(np.float64)
        total = hist.sum()
        if total == 0:
            return 0.0
        if value >= hi - SAME_VALUE * max(abs(hi), abs(lo)):
            return 100.0
        if value < lo:
            return 0.0
        pos = (value - lo) / max(hi - lo, 1e-12) * len(hist)
        b = min(int(pos), len(hist) - 1)
        below = hist[:b].sum() + hist[b] * min(pos - b, 1.0)
        return float(100.0 * below / total)

    def maxima(self, layer: str) -> np.ndarray:
        """[n_images, channels] float16: every image's value of every unit of *layer* (as ranked; row = image
        id), memory-mapped."""
        self.check_layer(layer)
        f = maxima_file(self.path, layer)
        if not f.is_file():
            raise IndexError_(f"{f} is missing: the index was made by an older imagemachines. Rebuild it "
                              "(`imagemachines index … --rebuild`).")
        return open_array(f, "maxima")

    # -- pooled activations ----------------------------------------------------------------------------------
    def pooled(self, layer: str) -> np.ndarray | None:
        """[n_images, channels] float16 spatial means (row = image id), memory-mapped; None if built --no-pooled."""
        self.check_layer(layer)
        if not self.manifest.get("pooled", True):
            return None
        f = pooled_file(self.path, layer)
        if not f.is_file():
            raise IndexError_(f"{f} is missing; rebuild the index.")
        return open_array(f, "pooled")

    def similarity(self):
        """The similarity modes (:class:`~imagemachines.index.similarity_store.SimilarityStore`: content, style,
        composition; search, why, near-duplicates); a clear UserError for an index made before them."""
        with self._lock:
            if getattr(self, "_similarity", None) is None:
                from imagemachines.index.similarity_store import SimilarityStore

                self._similarity = SimilarityStore.open(self)
            return self._similarity

    def similar(self, layer: str, vector: np.ndarray, k: int = 10, exclude: int | None = None
                ) -> list[tuple[int, float]]:
        """The images whose pooled activations of *layer* are closest to *vector* (cosine), best first; each
        painting once (copies of an earlier file left out), *exclude* and its copies left out."""
        data = self.pooled(layer)
        if data is None:
            raise UserError(f"The index in {self.path} was built with --no-pooled; similarity needs pooled "
                            "activations. Rebuild it without --no-pooled.")
        v = np.asarray(vector, dtype=np.float32).ravel()
        if v.shape[0] != data.shape[1]:
            raise UserError(f"A vector of {v.shape[0]} values does not fit layer {layer!r} ({data.shape[1]} units).")
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        scores = np.empty(data.shape[0], dtype=np.float32)
        step = 4096
        for s in range(0, data.shape[0], step):
            block = np.asarray(data[s:s + step], dtype=np.float32)
            norms = np.linalg.norm(block, axis=1).clip(1e-12)
            scores[s:s + step] = block @ v / norms
        hide = list(self.copies())  # each painting once
        if exclude is not None and 0 <= exclude < len(scores):
            hide += self.same_image(exclude)  # the painting itself, and any copy of it
        scores[hide] = -np.inf
        n = max(0, min(k, int(np.isfinite(scores).sum())))
        best = np.argsort(-scores, kind="stable")[:n]
        return [(int(i), float(scores[i])) for i in best]
