"""``examples``: a unit's top (or bottom) paintings as an offline HTML contact sheet and a CSV.

Each example shows the painting with the unit's activation map as a heat overlay (toggle in the page), the
crop around the strongest cell, value, percentile, position, the photograph's size and source, and metadata;
beside them the unit's render (made with the default method at a small size, so that it stays quick on a CPU;
``render=False`` skips it), how the examples were ranked, whether the unit peaks on the border of its map, and
which metadata values its top paintings over-represent (:mod:`imagemachines.index.unit_notes`).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from imagemachines import csvfiles
from imagemachines.errors import UnitOutOfRange, UserError, did_you_mean
from imagemachines.fileio import PictureRecord, atomic_write
from imagemachines.index.query import CollectionIndex
from imagemachines.models.loaded import LoadedModel
from imagemachines.models.taps import LOGITS

THUMB = 320
CROP = 160
LINK_COLUMNS = re.compile(r"url|link|page|wga", re.I)
RENDER = "render.png"
OWN_NAMES = re.compile(r"\d{3,}(-crop|-heat)?\.jpg|render\.png")  # the only names this writer gives pictures


@dataclass
class ExampleCard:
    rank: int
    path: str
    value: float
    percentile: float
    cell: tuple[int, int]
    box: tuple[int, int, int, int]
    image: str  # file names relative to the page
    heat: str
    crop: str
    photo: str = ""  # the photograph: size in pixels and source
    on_border: bool = False
    meta: dict[str, str] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)
    accent: str = ""  # the painting accentuated for the unit (the top few, when asked)
    accent_gain: float | None = None


def class_channel(index: CollectionIndex, name: str) -> int:
    """A class of the indexed model by name or number (for ``--class``)."""
    classes = list(index.manifest.get("class_names") or [])
    if LOGITS not in index.layers:
        raise UserError(f"The index in {index.path} has no 'logits' layer; rebuild it with --layers including "
                        "logits to look at classes.")
    if name in classes:
        return classes.index(name)
    if name.isdigit():
        return int(name)
    raise UnitOutOfRange(f"The model has no class {name!r}.{did_you_mean(name, classes)} Give a class name or "
                         "number.")


def load_index_model(index: CollectionIndex, model: str | None = None, weights: str | None = None,
                     device: str = "cpu") -> LoadedModel:
    """The model the index was made with (or *model* / *weights*), refused when its weights differ."""
    from imagemachines.models import load_model

    ref = model or index.manifest.get("model_ref") or index.model_name
    w = weights if weights is not None else (index.manifest.get("weights") if model is None else None)
    loaded = load_model(ref, weights=w or "imagenet", device=device)
    if loaded.weights_id != index.weights_id:
        raise UserError(f"The index in {index.path} was made with weights {index.weights_id}, but {ref!r} has "
                        f"{loaded.weights_id}. Give the index's own model with --model/--weights, or index again.")
    return loaded


def crop_square(size: tuple[int, int], box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The strongest region of an image of *size* (width, height): *box* grown to a square at least a quarter of
    the image's shorter side, clipped to the image; (left, top, right, bottom)."""
    width, height = size
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, min(size) // 4, 8)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(max(0, min(width - side, cx - side / 2)))
    top = int(max(0, min(height - side, cy - side / 2)))
    return left, top, min(width, left + side), min(height, top + side)


def _crop(img: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    return img.crop(crop_square(img.size, box)).resize((CROP, CROP))


def _links(meta: dict[str, str]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in meta.items() if LINK_COLUMNS.search(k) and v.startswith(("http://", "https://"))]


def _accentuate(model: LoadedModel, img: Image.Image, layer: str, channel: int, out: Path, stem: str,
                steps: int) -> tuple[str, float | None]:
    """The painting accentuated for the unit (:func:`imagemachines.vis.accentuate`): its file and gain."""
    from imagemachines.vis import Unit, save_render
    from imagemachines.vis.accentuation import accentuate

    [a] = accentuate(model, img, Unit(layer, channel), steps=steps)
    name = f"files/{stem}-accent.png"
    save_render(a, out / name)
    (out / name).with_suffix(".json").unlink(missing_ok=True)  # the recipe is in the PNG
    return name, a.numbers["gain"]


def write_examples(index: CollectionIndex, model: LoadedModel | None, layer: str, channel: int, out: Path, *,
                   k: int | None = None, negative: bool = False, render: bool = True, render_size: int = 128,
                   render_steps: int = 128, accentuate: int = 0, accent_steps: int = 128,
                   progress: bool = True) -> Path:
    """Write ``examples.html``, ``examples.csv`` and the pictures into *out*; returns the HTML path.

    Without *model* there are no heat overlays and no render (the page still shows paintings and values). With
    *accentuate* = n, the first n paintings are also shown accentuated for the unit (*accent_steps* steps each,
    at the network's input size): what the unit sees in each of them.
    """
    from tqdm.auto import tqdm

    from imagemachines.index.maps import activation_maps, heat_overlay
    from imagemachines.index.unit_notes import caption_meta, photo_line, unit_notes
    from imagemachines.report import write_html

    index.check_unit(layer, channel)
    examples = index.examples(layer, channel, k=k, negative=negative)
    stats = index.stats(layer, channel)
    notes = unit_notes(index, layer, channel, negative=negative)
    out = Path(out)
    planned = {f"{ex.rank:03d}{part}.jpg" for ex in examples for part in ("", "-crop", "-heat")} | {RENDER}
    record = PictureRecord(out / "files", OWN_NAMES, legacy_marker=out / "examples.csv").start(planned)
    cards, rows = [], []
    columns = list(index.manifest.get("metadata_columns") or [])
    for ex in tqdm(examples, desc="examples", unit="img", disable=not progress or len(examples) < 2, leave=False):
        info = index.image(ex.image_id)
        stem = f"{ex.rank:03d}"
        path = index.image_file(ex.image_id)  # OutsideImageFolder for a row that would read outside: refused
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except Exception as exc:  # noqa: BLE001 - a file changed or gone since indexing: say so on the page
            img = None
            why = f"{type(exc).__name__}: {exc}"
        thumb = heat = crop = ""
        if img is not None:
            small = img.copy()
            small.thumbnail((THUMB, THUMB))
            thumb = f"files/{stem}.jpg"
            small.save(out / thumb, quality=88)
            crop = f"files/{stem}-crop.jpg"
            _crop(img, ex.box).save(out / crop, quality=88)
            if model is not None:
                amap = activation_maps(model, [img], layer, [channel], ranking=index.ranking)[0, 0]
                heat = f"files/{stem}-heat.jpg"
                heat_overlay(small, amap, alpha=0.55, vmax=max(stats.max, 1e-6)).save(out / heat, quality=88)
        meta = caption_meta(info.meta)
        if img is None:
            meta = {"unreadable now": why, **meta}
        card = ExampleCard(ex.rank, info.path, ex.value, ex.percentile, ex.cell, ex.box, thumb, heat, crop,
                           photo_line(info), ex.on_border, meta, _links(meta))
        if img is not None and model is not None and len(cards) < accentuate:
            card.accent, card.accent_gain = _accentuate(model, img, layer, channel, out, stem, accent_steps)
        cards.append(card)
        rows.append({"rank": ex.rank, "path": info.path, "value": f"{ex.value:.6g}",
                     "percentile": f"{ex.percentile:.2f}", "row": ex.cell[0], "col": ex.cell[1],
                     "x0": ex.box[0], "y0": ex.box[1], "x1": ex.box[2], "y1": ex.box[3],
                     "on_border": int(ex.on_border), "image_width": info.width, "image_height": info.height,
                     **{c: info.meta.get(c, "") for c in columns}})
    render_file = ""
    render_value = None
    if render and model is not None:
        from imagemachines.vis import Unit
        from imagemachines.vis import render as run_render

        [r] = run_render(model, Unit(layer, channel), size=render_size, steps=render_steps)
        render_file = f"files/{RENDER}"
        r.image.save(out / render_file)
        render_value = r.activation
    record.finish({Path(name).name for card in cards for name in (card.image, card.heat, card.crop) if name}
                   | ({RENDER} if render_file else set()))
    buf = io.StringIO()
    writer = csvfiles.dict_writer(buf, fieldnames=["rank", "path", "value", "percentile", "row", "col",
                                                   "x0", "y0", "x1", "y1", "on_border", "image_width",
                                                   "image_height", *columns])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "examples.csv", lambda tmp: tmp.write_text(buf.getvalue(), encoding="utf-8"))
    classes = index.manifest.get("class_names") or []
    unit_name = f"{layer}:{channel}" + (f" ({classes[channel]})" if layer == LOGITS and channel < len(classes) else "")
    side = "bottom" if negative else "top"
    return write_html(
        out / "examples.html", "examples.html",
        title=f"{side.title()} {len(cards)} of {unit_name} — {index.model_name}",
        unit=unit_name, model=index.model_name, side=side, cards=cards, stats=stats, n_images=index.n_images,
        image_root=str(index.image_root), render_file=render_file, render_value=render_value,
        ratio=(render_value / stats.max if render_value is not None and stats.max > 0 else None),
        has_heat=any(c.heat for c in cards), notes=notes,
    )
