"""The collections a server offers: indexes checked against the served weights, and what the API computes
from them (activation maps of a painting, its top units and similar paintings, thumbnails and heat overlays).

Work on paintings runs on a private copy of each model: the render worker uses the served model's module at the
same time, and forward hooks on a shared module would fire in both. Results are cached in memory, bounded.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from imagemachines.errors import UserError
from imagemachines.models import LOGITS, LoadedModel
from imagemachines.serve.lru import BoundedLRU

THUMB_SIZES = (96, 128, 192, 256, 384, 512, 768, 1024)
WORKING_SIDE = 1024
LINK_COLUMNS = ("wga_url", "URL", "url", "link", "page")
META_ALIASES = {
    "artist": ("artist", "AUTHOR", "author"),
    "title": ("title", "TITLE"),
    "date": ("year", "DATE", "date"),
    "label": ("label", "class", "TYPE"),
}


def display_meta(meta: Mapping[str, str]) -> dict[str, str | None]:
    """Artist, title, date, label and the web page link (only http/https) from an image's metadata row."""
    out: dict[str, str | None] = {}
    for key, names in META_ALIASES.items():
        out[key] = next((str(meta[n]) for n in names if meta.get(n) not in (None, "")), None)
    link = next((str(meta[n]).strip() for n in LINK_COLUMNS if meta.get(n)), "")
    out["link"] = link if re.match(r"^https?://", link) else None
    return out


def index_slug(path: Path, taken: set[str]) -> str:
    """A short URL-safe id for the index at *path*: its folder name (with the parent's when that is generic)."""
    path = Path(path)
    name = path.name if path.name.lower() not in ("index", "") else f"{path.parent.name}-{path.name}"
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:60] or "index"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


@dataclass
class ServedIndex:
    id: str
    index: object            # imagemachines.index.CollectionIndex
    model: LoadedModel        # the served model with the index's weights

    @property
    def layers(self) -> list[str]:
        return list(self.index.layers)


def match_indexes(indexes: Sequence, models: Mapping[str, LoadedModel]) -> dict[str, ServedIndex]:
    """Give each opened index an id and the served model with its weights; a UserError naming both weights ids
    when an index was made with weights no served model has."""
    by_weights: dict[str, LoadedModel] = {}
    for model in models.values():
        by_weights.setdefault(model.weights_id, model)
    served: dict[str, ServedIndex] = {}
    for index in indexes:
        model = by_weights.get(index.weights_id)
        if model is None:
            offered = ", ".join(f"{n} (weights {m.weights_id})" for n, m in models.items())
            raise UserError(
                f"The index {index.path} was made with {index.model_name} weights {index.weights_id!r}, but this "
                f"server serves {offered}. Serve the model the index was made with (`imagemachines serve "
                f"{index.model_name} --index {index.path}`), or build an index for this model with "
                f"`imagemachines index MODEL IMAGE_DIR`."
            )
        slug = index_slug(index.path, set(served))
        served[slug] = ServedIndex(slug, index, model)
    return served


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buf, format="JPEG", quality=85)
    else:
        image.save(buf, format=fmt)
    return buf.getvalue()


def snap_size(size: int) -> int:
    """The smallest offered thumbnail side >= *size* (so caches see few distinct sizes)."""
    return next((s for s in THUMB_SIZES if s >= size), THUMB_SIZES[-1])


def _explanation_bytes(explanation) -> int:
    return sum(m.nbytes for m in explanation.maps.values()) + 200 * (len(explanation.units) * 2 + 16)


class Workbench:
    """Forward passes on paintings for the API, on private model copies, with bounded caches."""

    def __init__(self, *, map_bytes: int = 128 * 2**20,
                 image_bytes: int = 96 * 2**20, picture_bytes: int = 64 * 2**20,
                 explanation_bytes: int = 64 * 2**20) -> None:
        self._copies: dict[str, tuple[LoadedModel, threading.Lock]] = {}
        self._copies_lock = threading.Lock()
        self.maps: BoundedLRU[np.ndarray] = BoundedLRU(512, map_bytes, size_of=lambda a: a.nbytes)
        self.images: BoundedLRU[Image.Image] = BoundedLRU(
            128, image_bytes, size_of=lambda im: im.width * im.height * 3)
        self.pictures: BoundedLRU[bytes] = BoundedLRU(4096, picture_bytes)
        self.explanations: BoundedLRU = BoundedLRU(256, explanation_bytes, size_of=_explanation_bytes)

    def forget(self, key: tuple) -> int:
        """Drop everything computed from the image *key* (``("upload", id)``: an upload that is gone); how much."""
        n = len(key)

        def about(cached) -> bool:
            return isinstance(cached, tuple) and any(cached[i:i + n] == key for i in range(len(cached) - n + 1))

        return sum(cache.drop_where(about) for cache in (self.maps, self.images, self.pictures, self.explanations))

    def worker(self, model: LoadedModel) -> tuple[LoadedModel, threading.Lock]:
        """The private copy of *model* (made on first use) and the lock that serializes its use."""
        with self._copies_lock:
            if model.name not in self._copies:
                private = dataclasses.replace(model, module=copy.deepcopy(model.module), _fast=None)
                self._copies[model.name] = (private, threading.Lock())
            return self._copies[model.name]

    # -- pixels -------------------------------------------------------------------------------------------
    def indexed_image(self, served: ServedIndex, image_id: int) -> Image.Image:
        """The painting *image_id* of *served* (RGB, at most WORKING_SIDE), from the index's own table."""

        def load() -> Image.Image:
            path = served.index.image_file(image_id)
            try:
                with Image.open(path) as img:
                    img.draft("RGB", (WORKING_SIDE, WORKING_SIDE))
                    img = ImageOps.exif_transpose(img).convert("RGB")
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise UserError(f"The painting {image_id} of index {served.id!r} cannot be read any more "
                                f"({exc}); was the image folder changed? Re-run `imagemachines index`.") from None
            img.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS)
            return img

        return self.images.get_or_make(("img", served.id, image_id), load)

    def thumbnail(self, key: tuple, image: Image.Image, size: int) -> bytes:
        size = snap_size(size)

        def make() -> bytes:
            small = image.copy()
            small.thumbnail((size, size), Image.Resampling.LANCZOS)
            return encode(small)

        return self.pictures.get_or_make(("thumb", *key, size), make)

    # -- activations --------------------------------------------------------------------------------------
    def layer_maps(self, model: LoadedModel, key: tuple, image: Image.Image, layer: str,
                   ranking: str = "full") -> np.ndarray:
        """All channels' activation maps of *layer* over *image*: [channels, h, w] float32 (cached), as an index of
        *ranking* sees the painting (only ``reflect`` changes the maps)."""
        from imagemachines.index.maps import activation_maps

        ranking = "reflect" if ranking == "reflect" else "full"

        def make() -> np.ndarray:
            channels = range(model.layer(layer).channels)
            private, lock = self.worker(model)
            with lock:
                maps = activation_maps(private, [image], layer, list(channels), ranking=ranking)
            return np.ascontiguousarray(maps[0], dtype=np.float32)

        return self.maps.get_or_make(("maps", model.name, *key, layer, ranking), make)

    def explain(self, model: LoadedModel, key: tuple, image: Image.Image, layer: str, index, n_similar: int,
                exclude: int | None = None, mode: str = "content"):
        """``explain_image`` of *image* at *layer* (every unit ranked), on the private model copy (cached)."""
        from imagemachines.explain import explain_image

        def make():
            private, lock = self.worker(model)
            with lock:
                return explain_image(private, image, layer=layer, index=index, k=model.layer(layer).channels,
                                     similar=n_similar, exclude=exclude, mode=mode)

        where = str(index.path) if index is not None else None
        return self.explanations.get_or_make(("explain", model.name, *key, layer, where, n_similar, mode), make)

    def overlay(self, model: LoadedModel, key: tuple, image: Image.Image, layer: str, channel: int, size: int,
                vmax: float | None, ranking: str = "full") -> bytes:
        """A JPEG of *image* (longer side *size*) with *channel*'s activation map over it (as an index of
        *ranking* sees the painting)."""
        from imagemachines.index.maps import heat_overlay

        size = snap_size(size)
        model.check_channel(layer, channel)

        def make() -> bytes:
            heat = self.layer_maps(model, key, image, layer, ranking)[channel]
            small = image.copy()
            small.thumbnail((size, size), Image.Resampling.LANCZOS)
            return encode(heat_overlay(small, heat, vmax=vmax))

        return self.pictures.get_or_make(("overlay", model.name, *key, layer, channel, size, vmax, ranking), make)


def rank_in_collection(explanation, index, k: int) -> tuple[list, list]:
    """:func:`imagemachines.explain.explain_image`'s rankings cut to *k*, leaving out of the percentile
    ranking the units that are constant over the collection (dead ones): their "100th percentile" means nothing."""
    by_percentile = explanation.by_percentile
    if by_percentile:
        layer = explanation.ranked_at or explanation.layer
        by_percentile = [h for h in by_percentile
                         if index.stats(layer, h.channel).max > index.stats(layer, h.channel).min]
    return explanation.units[:k], by_percentile[:k]


def tie_sentences(explanation, by_value: list, by_percentile: list) -> list[str]:
    """The explanation's ties that reach the units the page shows, in the words of ``explain.html``."""
    from imagemachines.explain.page import tie_text

    shown = {"value": [h.channel for h in by_value], "percentile": [h.channel for h in by_percentile]}
    values = {"value": {h.channel: h.value for h in explanation.units},
              "percentile": {h.channel: h.percentile for h in explanation.by_percentile}}
    out = []
    for tie in explanation.ties:
        seen = [c for c in shown[tie.by] if values[tie.by].get(c) == tie.at]
        if seen:
            out.append(tie_text({**tie.as_dict(), "shown": len(seen)}, explanation.ranked_at or explanation.layer))
    return out


def default_layer(model: LoadedModel, index=None) -> str:
    """The layer a painting's units are ranked at when none is asked: the one `imagemachines explain` takes
    (:func:`imagemachines.explain.lookup.lookup_layer`: the deepest block with spatial maps, with an index the
    deepest indexed one), so the web and the command line give one painting one answer; failing that, the
    deepest block with maps (or the index's deepest layer)."""
    from imagemachines.explain.lookup import lookup_layer

    try:
        return lookup_layer(model, None, index)
    except UserError:
        pass
    names = [layer.name for layer in model.layers() if layer.name != LOGITS and layer.height > 1]
    if index is not None:
        names = [n for n in names if n in index.layers] or [n for n in index.layers if n != LOGITS] \
            or list(index.layers)
    if not names:
        names = [layer.name for layer in model.layers()]
    return names[-1]
