"""Write an explanation as files: PNG overlays, ``explain.html`` and ``explain.json`` in one folder.

The folder works offline (relative links only). The painting is shown at most ``DISPLAY`` px wide; overlays
are drawn on that copy, the maps themselves are computed on the network's input (the whole painting squashed
to the input square). Render thumbnails of the top units are small and bounded (``renders``, ``render_steps``)
because on a CPU each takes a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from imagemachines.errors import UserError
from imagemachines.explain.lookup import Explanation, UnitHit, check_index_model, explain_image, similar_paintings
from imagemachines.explain.targets import ClassMaps, class_maps, unit_map
from imagemachines.fileio import atomic_write
from imagemachines.models.loaded import LoadedModel

if TYPE_CHECKING:
    from imagemachines.index import CollectionIndex

DISPLAY = 640  # px: longest side of the painting and its overlays
CARD = 256  # px: the reverse lookup's map overlays
THUMB = 200  # px: similar paintings
FOLDERS = ("units", "classes", "lookup", "similar")
LINK_COLUMNS = re.compile(r"url|link|page|wga", re.I)


@dataclass
class Options:
    """What to explain and how (the CLI's options)."""

    units: list[tuple[str, int]] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: ["gradcam", "gradcam++", "ig"])
    cam_layer: str | None = None
    ig_steps: int | None = None
    baseline: str = "black"
    layer: str | None = None  # reverse lookup
    k: int = 12
    similar: int = 12
    mode: str = "content"  # similarity mode of the similar paintings (or a mix, "content:0.5,style:0.5")
    renders: int = 12  # units of the reverse lookup that get a render thumbnail (0: none)
    render_size: int = 96
    render_steps: int = 64
    progress: bool = True

    @property
    def lookup(self) -> bool:
        return not self.units and not self.classes


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _save_png(img: Image.Image, path: Path) -> None:
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG", optimize=True))


def _save_jpeg(img: Image.Image, path: Path) -> None:
    atomic_write(path, lambda tmp: img.save(tmp, format="JPEG", quality=88))


def _shrunk(image: Image.Image, side: int) -> Image.Image:
    small = image.copy()
    small.thumbnail((side, side), Image.LANCZOS)
    return small


def find_in_index(index: CollectionIndex, image_file: Path) -> int | None:
    """The id of *image_file* in *index* when the collection holds the same bytes (sha256), else None."""
    digest = hashlib.sha256(Path(image_file).read_bytes()).hexdigest()
    return next((info.id for info in index.images() if info.sha256 == digest), None)


def _clear(out: Path) -> None:
    """Remove the pictures an earlier explanation left in *out* (only the files this writer makes)."""
    for name in FOLDERS:
        for old in (out / name).glob("*"):
            if old.is_file() and old.suffix in (".png", ".jpg"):
                old.unlink()


def _hit_json(hit: UnitHit, index: CollectionIndex | None, ranked_at: str | None = None, **files: str) -> dict:
    """*hit* with its files and (with an index) its ratio to the collection's best painting, both measured at
    *ranked_at* (default: the hit's layer)."""
    data = hit.as_dict() | files
    at = ranked_at or hit.layer
    if index is not None and at in index.layers:
        stats = index.stats(at, hit.channel)
        data["collection_max"] = stats.max
        data["times_collection_max"] = hit.value / stats.max if stats.max > 0 else None
    return data


def write_explanation(model: LoadedModel, image: Image.Image, out: Path, options: Options, *,
                      image_name: str = "painting", index: CollectionIndex | None = None,
                      in_collection: int | None = None) -> dict:
    """Explain *image* as *options* say; write overlays, ``explain.html`` and ``explain.json`` into *out*.

    Returns the JSON document (paths relative to *out*). *in_collection*: the painting's id in *index* (it is
    then left out of the similar paintings).
    """
    from tqdm.auto import tqdm

    from imagemachines.index.maps import heat_overlay, peak_cell
    from imagemachines.index.peaks import DEFAULT_RANKING
    from imagemachines.report import write_html

    if index is not None:
        check_index_model(index, model)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder.")
    for name in FOLDERS:
        (out / name).mkdir(parents=True, exist_ok=True)
    _clear(out)
    display = _shrunk(image, DISPLAY)
    _save_jpeg(display, out / "painting.jpg")
    doc: dict = {"model": model.name, "weights_id": model.weights_id, "image": image_name,
                 "size": list(image.size), "painting": "painting.jpg", "html": "explain.html",
                 "index": None if index is None else str(index.path), "in_collection": in_collection,
                 "units": [], "classes": [], "lookup": None, "similar_basis": None, "similar_mode": None,
                 "similarity_spec": None, "similar": [], "same_painting": []}
    with_similar = index is not None and options.similar > 0
    steps = (len(options.units) + len(options.classes) * len(options.methods) + (1 if options.lookup else 0)
             + (1 if with_similar and not options.lookup else 0))
    bar = tqdm(total=steps, desc="explaining", unit="map", disable=not options.progress or steps < 2, leave=False)

    for layer, channel in options.units:
        ranking = index.ranking if index is not None else DEFAULT_RANKING
        heat = unit_map(model, image, layer, channel, ranking)
        r, c = peak_cell(heat, ranking)
        value = float(heat[r, c])
        percentile = (index.percentile(layer, channel, value)
                      if index is not None and layer in index.layers else None)
        hit = UnitHit(layer, channel, value, percentile, (r, c))
        name = f"units/{slug(layer)}_{channel}.png"
        _save_png(heat_overlay(display, heat, alpha=0.55), out / name)
        doc["units"].append(_hit_json(hit, index, overlay=name))
        bar.update(1)

    for target in options.classes:
        cm: ClassMaps = class_maps(model, image, target, [], layer=options.cam_layer)
        entry = cm.as_dict() | {"maps": {}}
        for method in options.methods:
            bar.set_postfix_str(f"class {target} {method}")
            heat = class_maps(model, image, target, [method], layer=options.cam_layer, steps=options.ig_steps,
                              baseline=options.baseline).maps[method]
            name = f"classes/{target}-{slug(cm.name or str(target))}-{slug(method)}.png"
            _save_png(heat_overlay(display, heat, alpha=0.55, vmax=1.0), out / name)
            entry["maps"][method] = name
            bar.update(1)
        doc["classes"].append(entry)

    explanation: Explanation | None = None
    if options.lookup:
        bar.set_postfix_str("reverse lookup")
        explanation = explain_image(model, image, layer=options.layer, index=index, k=options.k,
                                    similar=options.similar, exclude=in_collection, mode=options.mode)
        doc["lookup"] = _write_lookup(model, explanation, display, out, options, index, heat_overlay)
        bar.update(1)
        neighbours, same, mode, basis = (explanation.neighbours, explanation.same_painting, explanation.mode,
                                         explanation.similar_basis)
    elif with_similar:  # --unit / --class with an index: the same similar paintings as the reverse lookup's
        bar.set_postfix_str("similar paintings")
        found = similar_paintings(model, image, index, mode=options.mode, layer=options.layer, k=options.similar,
                                  exclude=in_collection)
        neighbours, same, mode, basis = found.neighbours, found.same_painting, found.mode, found.basis
        bar.update(1)
    if with_similar:
        doc["similar_basis"], doc["similar_mode"] = basis, dict(mode)
        doc["similarity_spec"] = index.manifest.get("similarity")
        doc["similar"] = [_similar(index, n.image_id, n.score, rank, out, n) for rank, n in enumerate(neighbours, 1)]
        doc["same_painting"] = [_similar(index, i, 1.0, 0, out) for i in same]
    bar.close()
    atomic_write(out / "explain.json", lambda tmp: tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8"))
    write_html(out / "explain.html", "explain.html", title=f"{image_name} — {model.name}", doc=doc,
               method_names=_method_names(), tie_text=tie_text)
    return doc


def tie_text(tie: dict, layer: str) -> str:
    """A sentence for a :class:`~imagemachines.explain.lookup.Tie` (as in ``explain.json``), for the page and
    the CLI: how many units tie, where, and what orders the ones shown."""
    from imagemachines.index.records import percentile_label

    if tie["by"] == "percentile":
        return (f"{tie['units']} units of {layer} are tied at the {percentile_label(tie['at'])}th percentile "
                f"({tie['shown']} shown); among them, the value furthest above the unit's collection mean (in "
                "standard deviations) comes first.")
    return (f"{tie['units']} units of {layer} are tied at {tie['at']:.4g} ({tie['shown']} shown); among them, "
            "the unit with the larger mean over the painting comes first.")


def _method_names() -> dict[str, str]:
    from imagemachines.attribution import METHOD_NAMES

    return METHOD_NAMES


def _write_lookup(model: LoadedModel, e: Explanation, display: Image.Image, out: Path, options: Options,
                  index: CollectionIndex | None, heat_overlay) -> dict:
    card = _shrunk(display, CARD)
    files: dict[int, dict[str, str]] = {}
    for hit in e.hits():
        name = f"lookup/{slug(e.layer)}_{hit.channel}-map.png"
        _save_png(heat_overlay(card, e.maps[hit.channel], alpha=0.55), out / name)
        files[hit.channel] = {"overlay": name}
    for channel, name in _renders(model, e, out, options).items():
        files[channel]["render"] = name
    doc = e.to_json()
    for key in ("similar", "similar_mode", "similar_basis", "same_painting"):
        del doc[key]  # the document's own "similar" section holds them, with thumbnails and metadata
    doc["render_layer"] = render_layer(model, e.layer) if options.renders > 0 else None
    doc["units"] = [_hit_json(h, index, e.ranked_at, **files[h.channel]) for h in e.units]
    doc["by_percentile"] = [_hit_json(h, index, e.ranked_at, **files[h.channel]) for h in e.by_percentile]
    return doc


def _renders(model: LoadedModel, e: Explanation, out: Path, options: Options) -> dict[int, str]:
    """Render thumbnails of the first ``options.renders`` units shown, in one batched render."""
    from tqdm.auto import tqdm

    from imagemachines.vis import Unit, render

    hits = e.hits()[: max(0, options.renders)]
    if not hits:
        return {}
    layer = render_layer(model, e.layer)
    units = [Unit(layer, h.channel) for h in hits]
    with tqdm(total=options.render_steps, desc=f"rendering {len(units)} units", unit="step",
              disable=not options.progress, leave=False) as bar:
        renders = render(model, units, size=options.render_size, steps=options.render_steps,
                         on_progress=lambda _p: bar.update(1))
    names = {}
    for hit, r in zip(hits, renders, strict=True):
        name = f"lookup/{slug(e.layer)}_{hit.channel}-render.png"
        _save_png(r.image, out / name)
        names[hit.channel] = name
    return names


def render_layer(model: LoadedModel, layer: str) -> str:
    """The layer to render *layer*'s units at: the module before a closing ReLU/ReLU6 when *layer* is a block
    that ends in one (same channels). A clipped unit that is off everywhere has no gradient, so a render of it
    would stay grey; its pre-activation can always be maximised, and maximising it drives the unit."""
    from torch import nn

    from imagemachines.models.clamps import before_closing

    found = before_closing(model, layer, (nn.ReLU, nn.Hardtanh))
    return found[0] if found else layer


def _similar(index: CollectionIndex, image_id: int, score: float, rank: int, out: Path, neighbour=None) -> dict:
    info = index.image(image_id)
    entry = {"rank": rank, "image_id": image_id, "score": score, "path": info.path, "meta": dict(info.meta),
             "links": {k: v for k, v in info.meta.items()
                       if LINK_COLUMNS.search(k) and v.startswith(("http://", "https://"))}}
    if neighbour is not None:  # why it is close (units link to their examples page's command), its copies
        entry["scores"] = dict(neighbour.scores)
        entry["reasons"] = [r.as_dict() for r in neighbour.reasons]
        entry["copies"] = [index.image(c).path for c in neighbour.copies]
    path = index.image_file(image_id)  # OutsideImageFolder for a row that would read outside: refused
    try:
        with Image.open(path) as im:
            thumb = _shrunk(im.convert("RGB"), THUMB)
    except Exception as exc:  # noqa: BLE001 - a file changed or gone since indexing: say so on the page
        entry["unreadable"] = f"{type(exc).__name__}: {exc}"
        return entry
    name = f"similar/{rank:02d}-{image_id}.jpg" if rank else f"similar/copy-{image_id}.jpg"
    _save_jpeg(thumb, out / name)
    entry["thumb"] = name
    return entry
