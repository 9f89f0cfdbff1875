"""The forward pass behind concepts: a layer's activations over each painting's crops and over the whole painting.

Crops are made on the fly, painting by painting, and go through the network in batches together with the
whole paintings; memory holds one batch of pictures. Each painting's results go to the
:class:`~imagemachines.concepts.cache.ActivationCache` at once (crops: the spatial mean of the layer over each
crop; the painting: the layer's whole map), and the results are always read back from there, so a run that found
everything cached gives exactly the numbers of the run that computed them. Under torchrun painting *i* is
computed by rank *i* mod N, and the cache is where the ranks meet (like ``index``'s chunk files).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from imagemachines.concepts.cache import ActivationCache, file_key
from imagemachines.concepts.crops import CropGrid, crop_tensors, read_rgb
from imagemachines.errors import UserError
from imagemachines.models.loaded import LoadedModel
from imagemachines.train.distributed import Dist

FORMAT = 1


@dataclass
class Activations:
    """The layer over a set of paintings: per crop (spatial mean) and per painting (the whole map)."""

    layer: str
    paths: list[str]                 # the readable paintings, relative to the image folder, in order
    sizes: list[tuple[int, int]]     # (width, height) of each painting
    maps: torch.Tensor               # [n, C, h, w] float32: the layer over each whole painting
    crops: torch.Tensor | None = None      # [n_crops, C] float32: the layer's spatial mean over each crop
    crop_image: torch.Tensor | None = None  # [n_crops] int64: the painting (row of paths) of each crop
    crop_box: torch.Tensor | None = None    # [n_crops, 4] int64: (left, top, right, bottom) in its pixels
    bad: list[tuple[str, str]] = field(default_factory=list)  # unreadable paintings and why
    computed: int = 0                # paintings computed by this run (the rest came from the cache)

    def subset(self, rows: Sequence[int]) -> Activations:
        """The same for the paintings at *rows* (crops renumbered)."""
        rows = [int(r) for r in rows]
        new = {old: i for i, old in enumerate(rows)}
        out = Activations(self.layer, [self.paths[r] for r in rows], [self.sizes[r] for r in rows],
                          self.maps[rows], bad=list(self.bad), computed=self.computed)
        if self.crops is not None:
            keep = torch.isin(self.crop_image, torch.tensor(rows, dtype=torch.long))
            out.crops = self.crops[keep]
            out.crop_image = torch.tensor([new[int(i)] for i in self.crop_image[keep]], dtype=torch.long)
            out.crop_box = self.crop_box[keep]
        return out


def setting(model: LoadedModel, layer: str, grid: CropGrid | None) -> dict:
    """What the cached numbers depend on (besides the painting itself)."""
    return {"format": FORMAT, "weights": model.weights_id, "layer": layer, "size": model.input_size,
            "mean": list(model.mean), "std": list(model.std),
            "grid": None if grid is None else [grid.size, grid.stride]}


def collect(model: LoadedModel, root: Path, paths: Sequence[str], layer: str, cache: ActivationCache, *,
            grid: CropGrid | None = None, batch_size: int | None = None, progress: bool = True,
            dist: Dist | None = None, desc: str = "crops",
            on_image: Callable[[int, int], None] | None = None) -> Activations | None:
    """The layer's activations over *paths* (relative to *root*): whole maps, and with *grid* every crop.

    *on_image(done, total)* is called after each painting this process computes (it may raise to stop the pass).
    Returns None on ranks other than 0 under torchrun (they only compute their share).
    """
    from imagemachines.train import distributed

    dist = dist or Dist()
    root = Path(root)
    bs = batch_size or (128 if model.device.type == "cuda" else 32)
    if bs < 1:
        raise UserError("--batch-size must be at least 1.")
    map_setting, crop_setting = setting(model, layer, None), setting(model, layer, grid) if grid else None
    keys: list[tuple[str, str | None]] = []
    bad: list[tuple[str, str]] = []
    for rel in paths:
        try:
            keys.append((file_key(map_setting, root / rel), file_key(crop_setting, root / rel) if grid else None))
        except OSError as exc:
            keys.append(("", None))
            bad.append((rel, f"{type(exc).__name__}: {exc}"))
    mine = [i for i in range(len(paths)) if i % dist.world == dist.rank and keys[i][0]]
    todo = [i for i in mine if not _cached(cache, keys[i])]
    bad += _compute(model, root, paths, layer, grid, cache, keys, todo, bs, progress and dist.main, desc, on_image)
    distributed.barrier(dist)
    every_bad = [b for part in distributed.gather(bad, dist) for b in part]
    computed = sum(distributed.gather(len(todo), dist))
    if not dist.main:
        return None
    return _read(cache, layer, paths, keys, dict(every_bad), computed, grid is not None)


def _cached(cache: ActivationCache, keys: tuple[str, str | None]) -> bool:
    return all(cache.path(k).is_file() for k in keys if k)


def _compute(model, root, paths, layer, grid, cache, keys, todo, bs, progress, desc,
             on_image=None) -> list[tuple[str, str]]:
    """Run the network over the paintings *todo* (rows of *paths*) and write each one's results to the cache."""
    from tqdm.auto import tqdm

    bad: list[tuple[str, str]] = []
    if not todo:
        return bad
    tap = model.tap([layer], fast=True)
    side = model.input_size
    pending: list[tuple[int, str, torch.Tensor, list]] = []  # (row, kind, pictures, boxes)
    rows_waiting = 0
    per_image = 1 + (grid.per_image if grid else 0)
    results: dict[int, dict] = {}

    def flush() -> None:
        nonlocal pending, rows_waiting
        if not pending:
            return
        x = torch.cat([p[2] for p in pending]).to(model.device)
        with torch.inference_mode():
            out = tap(x)[layer].float().cpu()
        start = 0
        for row, kind, pictures, boxes in pending:
            part = out[start:start + len(pictures)]
            start += len(pictures)
            entry = results.setdefault(row, {})
            if kind == "maps":
                entry["maps"] = part[0]
            else:
                entry["crops"] = part.mean(dim=(2, 3))
                entry["boxes"] = torch.tensor(boxes, dtype=torch.int32)
            if "maps" in entry and ("crops" in entry or grid is None):
                width, height = entry.pop("size")
                size = torch.tensor([width, height], dtype=torch.int32)
                cache.put(keys[row][0], {"maps": entry["maps"], "size": size})
                if grid is not None:
                    cache.put(keys[row][1], {"crops": entry["crops"], "boxes": entry["boxes"], "size": size})
                del results[row]
                bar.update(1)
                if on_image is not None:
                    on_image(int(bar.n), len(todo))
        pending, rows_waiting = [], 0

    with tqdm(total=len(todo), desc=desc, unit="img", dynamic_ncols=True, disable=not progress, leave=False) as bar:
        for row in todo:
            try:
                image = read_rgb(root / paths[row])
            except Exception as exc:  # noqa: BLE001 - an unreadable painting is reported, never fatal
                bad.append((paths[row], f"{type(exc).__name__}: {exc}"))
                bar.update(1)
                continue
            width, height = image.size
            results[row] = {"size": (width, height)}
            pending.append((row, "maps", crop_tensors(image, [(0, 0, width, height)], side, model.normalize), []))
            if grid is not None:
                boxes = grid.boxes(width, height)
                pending.append((row, "crops", crop_tensors(image, boxes, side, model.normalize), boxes))
            rows_waiting += per_image
            if rows_waiting >= bs:
                flush()
        flush()
    return bad


def _read(cache: ActivationCache, layer: str, paths: Sequence[str], keys, bad: dict[str, str], computed: int,
          with_crops: bool) -> Activations:
    kept, sizes, maps, crops, crop_image, crop_box = [], [], [], [], [], []
    for rel, (map_key, crop_key) in zip(paths, keys, strict=True):
        if rel in bad:
            continue
        whole = cache.get(map_key) if map_key else None
        parts = cache.get(crop_key) if with_crops and crop_key else None
        if whole is None or (with_crops and parts is None):
            raise UserError(f"The activations of {rel} are missing from the cache {cache.folder} (was it cleared "
                            "while this ran?). Run the command again.")
        row = len(kept)
        kept.append(rel)
        sizes.append((int(whole["size"][0]), int(whole["size"][1])))
        maps.append(whole["maps"].float())
        if with_crops:
            crops.append(parts["crops"].float())
            crop_image.append(torch.full((len(parts["crops"]),), row, dtype=torch.long))
            crop_box.append(parts["boxes"].long())
    if not kept:
        example = next(iter(bad.items()), None)
        raise UserError("None of the paintings could be read" + (f" (e.g. {example[0]}: {example[1]})" if example
                                                                   else "") + ".")
    result = Activations(layer, kept, sizes, torch.stack(maps), bad=sorted(bad.items()), computed=computed)
    if with_crops:
        result.crops, result.crop_image, result.crop_box = torch.cat(crops), torch.cat(crop_image), torch.cat(crop_box)
    return result
