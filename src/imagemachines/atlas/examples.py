"""A unit's top and bottom paintings from a collection index (``--index``), with the unit's activation map as
a heat overlay (:mod:`imagemachines.index.maps`) and the painting's metadata, for the atlas's unit pages.

Beside them, what :mod:`imagemachines.index.unit_notes` says: how the examples were ranked, whether the unit is
a border unit, which metadata values its top and bottom paintings over-represent, and each photograph's size
and source.

Pictures go to ``<layer>/ex/<channel>-<top|bottom><rank>-<image id>.jpg`` (``…-reflect.jpg`` for an index ranked
on mirrored paintings, whose maps differ); a file already there is kept, so a resumed or extended atlas does not
recompute them.
"""

from __future__ import annotations

from pathlib import Path

from imagemachines.errors import UserError

THUMB = 240
META_LINES = 4


def open_matching_index(path: Path, model):
    """The index at *path*, refused when it was built with other weights than *model*'s."""
    from imagemachines.index import open_index

    index = open_index(Path(path))
    if index.weights_id != model.weights_id:
        raise UserError(f"The index {path} was built with weights {index.weights_id!r}, the atlas model has "
                        f"{model.weights_id!r}: give an index of the same model (`imagemachines index`).")
    return index


def unit_examples(index, model, layer: str, channel: int, folder: Path, k: int = 6) -> dict | None:
    """Template context for the unit page: top and bottom *k* paintings; None when the index lacks the layer."""
    from PIL import Image

    from imagemachines.index.maps import activation_maps, heat_overlay
    from imagemachines.index.unit_notes import caption_meta, photo_line, unit_notes

    if layer not in index.layers:
        return None
    stats = index.stats(layer, channel)
    suffix = "-reflect" if index.ranking == "reflect" else ""
    parts = []
    for negative, title, css, name in ((False, "Strongest in the collection", "good", "top"),
                                       (True, "Weakest in the collection", "bad", "bottom")):
        examples = index.examples(layer, channel, k=min(k, index.k), negative=negative)
        items, todo = [], []
        for ex in examples:
            rel = f"ex/{channel}-{name}{ex.rank}-{ex.image_id}{suffix}.jpg"
            info = index.image(ex.image_id)
            meta = list(caption_meta(info.meta).items())[:META_LINES] or [("file", info.path)]
            items.append({"src": rel, "alt": info.path, "rank": ex.rank, "value": ex.value,
                          "percentile": ex.percentile, "meta": meta, "photo": photo_line(info),
                          "on_border": ex.on_border})
            if not (folder / Path(rel).name).is_file():
                todo.append((ex, folder / Path(rel).name))
        images, readable = [], []
        for ex, dest in todo:
            path = index.image_file(ex.image_id)  # OutsideImageFolder for a row that would read outside: refused
            try:
                with Image.open(path) as im:
                    small = im.convert("RGB")
            except (OSError, ValueError):  # moved or damaged since indexing: the page says so
                next(i for i in items if i["rank"] == ex.rank)["src"] = None
                continue
            small.thumbnail((THUMB, THUMB))
            images.append(small)
            readable.append((ex, dest))
        todo = readable
        if todo:
            maps = activation_maps(model, images, layer, [channel], ranking=index.ranking)
            folder.mkdir(parents=True, exist_ok=True)
            for (_, dest), small, heat in zip(todo, images, maps[:, 0], strict=True):
                heat_overlay(small, heat, alpha=0.5, vmax=max(stats.max, 1e-6)).save(dest, quality=88)
        parts.append({"title": title, "css": css, "examples": items, "side": name,
                      "notes": unit_notes(index, layer, channel, negative=negative)})
    return {"parts": parts, "notes": parts[0]["notes"],
            "note": f"From the index of {index.n_images} images in {index.image_root.name}/, "
                    f"{parts[0]['notes'].ranking_text}; heat: the unit's activation map over each painting."}


class ExamplesSheet:
    """A unit's dataset examples with heat overlays, for notebooks: shows itself in Jupyter (a captioned row
    of pictures); ``.images`` are the overlays (PIL), ``.examples`` the index's records, ``.paths`` the files."""

    def __init__(self, layer: str, channel: int, examples: list, paths: list[str], images: list, meta: list[dict],
                 photos: list[str] | None = None):
        self.layer, self.channel = layer, channel
        self.examples, self.paths, self.images, self.meta = examples, paths, images, meta
        self.photos = photos if photos is not None else [""] * len(examples)  # size and source of each photograph

    def __len__(self) -> int:
        return len(self.examples)

    def _repr_html_(self) -> str:
        from imagemachines.index.records import percentile_label
        from imagemachines.vis.display import figure_html

        figures = []
        for ex, path, image, meta, photo in zip(self.examples, self.paths, self.images, self.meta, self.photos,
                                                strict=True):
            label = " · ".join(v for v in list(meta.values())[:2] if v) or path
            caption = f"#{ex.rank} {ex.value:.2f} ({percentile_label(ex.percentile)}th pct) {label} · {photo}"
            figures.append(figure_html(image, caption, 200))
        return f"<div><b>{self.layer}:{self.channel}</b><br>{''.join(figures)}</div>"


def examples_sheet(index, model, layer: str, channel: int, *, k: int = 8, negative: bool = False,
                   size: int = THUMB) -> ExamplesSheet:
    """The top (or, with *negative*, bottom) *k* images of a unit in *index*, each with its heat overlay."""
    from PIL import Image

    from imagemachines.index.maps import activation_maps, heat_overlay

    examples = index.examples(layer, channel, k=k, negative=negative)
    stats = index.stats(layer, channel)
    images = []
    for ex in examples:
        with Image.open(index.image_file(ex.image_id)) as im:
            small = im.convert("RGB")
        small.thumbnail((size, size))
        images.append(small)
    maps = activation_maps(model, images, layer, [channel], ranking=index.ranking) if images else []
    overlays = [heat_overlay(im, heat[0], alpha=0.5, vmax=max(stats.max, 1e-6)) for im, heat in zip(images, maps,
                                                                                                   strict=True)]
    from imagemachines.index.unit_notes import photo_line

    infos = [index.image(ex.image_id) for ex in examples]
    return ExamplesSheet(layer, channel, examples, [i.path for i in infos], overlays, [dict(i.meta) for i in infos],
                         [photo_line(i) for i in infos])
