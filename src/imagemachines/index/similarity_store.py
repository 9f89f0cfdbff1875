"""The similarity modes in an index: merged from the chunks, finished over the collection, searched.

    similar/MODE.safetensors          [n_images, D] float16 finished rows (unit length), row = image id,
                                      memory-mapped when read; MODE = content, style, composition
    similar/MODE-finish.safetensors   how a new painting's raw vector becomes a row (centre, scale, blocks)

The composition rows also find near-duplicates: two photographs of one painting have nearly the same
arrangement (cosine ≥ :data:`DUPLICATE_COSINE`), different paintings do not (docs/explain.md).

The chunks keep every painting's raw vectors (``similar/content``, ``similar/style``, ``similar/grid``), so
the finished files are a function of the whole collection, rebuilt at every merge: shards, resumed runs and
increments give the same files as one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from imagemachines.errors import UnitOutOfRange, UserError
from imagemachines.index.neighbours import (
    Neighbour,
    best,
    cosine,
    exact_scores,
    group_duplicates,
    layer_reasons,
    unit_reasons,
)
from imagemachines.index.similarity_vectors import (
    DUPLICATE_COSINE,
    MODES,
    Finish,
    SimilaritySpec,
    finish_options,
    fit_finish,
    parse_mode,
    raw_vectors,
    style_projection,
)
from imagemachines.index.store import chunk_file, load_tensors, open_array, save_tensors, write_array_streaming

if TYPE_CHECKING:
    from imagemachines.index.query import CollectionIndex
    from imagemachines.models.loaded import LoadedModel

RAW = {"content": "content", "style": "style", "composition": "grid"}  # mode → its raw vector in the chunks
EXTRA = 16  # candidates fetched beyond k, so that grouped copies do not leave the list short


def folder(index_dir: Path) -> Path:
    return Path(index_dir) / "similar"


def rows_file(index_dir: Path, mode: str) -> Path:
    return folder(index_dir) / f"{mode}.safetensors"


def finish_file(index_dir: Path, mode: str) -> Path:
    return folder(index_dir) / f"{mode}-finish.safetensors"


def projections(spec: SimilaritySpec) -> dict[str, torch.Tensor | None]:
    return {n: style_projection(n, c, spec.keep) for n, c in zip(spec.style, spec.style_channels, strict=True)}


def batch_vectors(outputs: dict[str, torch.Tensor], spec: SimilaritySpec,
                  projection: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
    """A tapped batch's raw vectors for the chunk files: content (the content layer's spatial mean), style, grid."""
    a = outputs[spec.content]
    content = a.float().flatten(2).mean(2) if a.ndim == 4 else a.float().flatten(1)
    return {"content": content, **raw_vectors(outputs, spec, projection)}


def painting_vectors(model: LoadedModel, image, spec: SimilaritySpec) -> dict[str, np.ndarray]:
    """One painting's raw vectors, preprocessed and computed exactly as the index computes them."""
    from imagemachines.index.passes import preprocess

    x = preprocess(model)(image.convert("RGB"))[None].to(model.device)
    with torch.inference_mode():
        raw = batch_vectors(model.tap(spec.layers)(x), spec, projections(spec))
    return {name: v[0].cpu().numpy() for name, v in raw.items()}


# -- merging ----------------------------------------------------------------------------------------------------
def merge_similarity(index_dir: Path, chunks: list[int], spec: SimilaritySpec, to_rows, n_images: int) -> None:
    """Write the finished rows of every mode from the chunks' raw vectors. *to_rows(keys)*
    maps a chunk's image keys to their rows (image ids). Each mode's raw rows are first laid out in image-id
    order (a temporary memory-mapped file), so the collection's statistics are summed in one fixed order
    whatever the chunks were: shards and increments give the same bytes. Memory stays one chunk."""
    out = folder(index_dir)
    out.mkdir(parents=True, exist_ok=True)

    def chunk_rows(name: str):
        for cid in chunks:
            t = load_tensors(chunk_file(index_dir, cid), ["keys", f"similar/{name}"])
            if t["keys"].numel():
                yield to_rows(t["keys"]).numpy(), t[f"similar/{name}"].numpy()

    for mode in MODES:
        raw_name = RAW[mode]
        width = spec.width(raw_name)
        scratch = out / f".raw-{mode}.safetensors"

        def lay_out(arr: np.ndarray, raw_name=raw_name) -> None:
            for rows, raw in chunk_rows(raw_name):
                arr[rows] = raw

        write_array_streaming(scratch, "raw", (n_images, width), np.float16, lay_out)
        try:
            raw = open_array(scratch, "raw")
            finish = fit_finish(raw, **finish_options(mode, width, spec))
            save_tensors(finish_file(index_dir, mode), {k: torch.from_numpy(np.ascontiguousarray(v))
                                                        for k, v in finish.tensors().items()})

            def fill(arr: np.ndarray, raw=raw, finish=finish) -> None:
                for s in range(0, len(raw), 4096):
                    arr[s:s + 4096] = finish.apply(raw[s:s + 4096]).astype(np.float16)

            write_array_streaming(rows_file(index_dir, mode), "rows", (n_images, width), np.float16, fill)
            del raw
        finally:
            scratch.unlink(missing_ok=True)


# -- reading ------------------------------------------------------------------------------------------------------
@dataclass
class Found:
    """The answer to one search: the similar paintings (copies grouped under each) and the copies of the query
    painting itself that the collection holds (the same painting, from another source)."""

    mode: dict[str, float]
    neighbours: list[Neighbour]
    same_painting: list[int]
    basis: str = ""  # what the paintings were compared by, in words: "content at features.18", …

    def as_dict(self) -> dict:
        return {"mode": dict(self.mode), "basis": self.basis, "neighbours": [n.as_dict() for n in self.neighbours],
                "same_painting": list(self.same_painting)}


class SimilarityStore:
    """An index's similarity modes, opened lazily: finished rows (memory-mapped) and finishes."""

    def __init__(self, index: CollectionIndex, spec: SimilaritySpec):
        self.index, self.spec = index, spec
        self._rows: dict[str, np.ndarray] = {}
        self._finish: dict[str, Finish] = {}

    @classmethod
    def open(cls, index: CollectionIndex) -> SimilarityStore:
        manifest = index.manifest
        if not manifest.get("pooled", True):
            raise UserError(f"The index in {index.path} was built with --no-pooled: similar paintings need the "
                            "pooled activations. Index again without --no-pooled.")
        if "similarity" not in manifest:
            raise UserError(f"The index in {index.path} was made before similarity modes (content, style, "
                            "composition). Run the same `imagemachines index MODEL IMAGE_DIR --out "
                            f"{index.path}` command again: it adds them (one pass over the images).")
        return cls(index, SimilaritySpec.from_dict(manifest["similarity"]))

    def basis(self, weights: dict[str, float]) -> str:
        """*weights* in words, with the layers each mode reads: ``content at features.18``, ``style at
        features.0 … features.13 (14 blocks)``, ``composition at features.13 (4×4)``; a mix joins them with its
        weights."""
        style = self.spec.style
        where = {"content": self.spec.content,
                 "style": ", ".join(style) if len(style) <= 3 else f"{style[0]} … {style[-1]} ({len(style)} blocks)",
                 "composition": f"{self.spec.composition} ({self.spec.grid}×{self.spec.grid})"}
        parts = [f"{m} at {where[m]}" for m in weights]
        if len(parts) == 1:
            return parts[0]
        return " + ".join(f"{w:g} × {p}" for w, p in zip(weights.values(), parts, strict=True))

    def rows(self, mode: str) -> np.ndarray:
        if mode not in self._rows:
            f = rows_file(self.index.path, mode)
            if not f.is_file():
                raise UserError(f"{f} is missing; run `imagemachines index` on {self.index.path} again.")
            self._rows[mode] = open_array(f, "rows")
        return self._rows[mode]

    def finish(self, mode: str) -> Finish:
        if mode not in self._finish:
            from safetensors.numpy import load_file

            self._finish[mode] = Finish.from_tensors(load_file(str(finish_file(self.index.path, mode))))
        return self._finish[mode]

    def prints(self) -> np.ndarray:
        """The fingerprints that find near-duplicates: the composition rows."""
        return self.rows("composition")

    def query_rows(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A new painting's finished rows from its raw vectors (:func:`painting_vectors`)."""
        out = {}
        for mode in MODES:
            # rounded to float16 first, as the index keeps every painting's raw vector
            v = np.asarray(raw[RAW[mode]], np.float32).ravel().astype(np.float16).astype(np.float32)
            width = self.rows(mode).shape[1]
            if v.shape[0] != width:
                raise UserError(f"A {mode} vector of {v.shape[0]} values does not fit this index ({width}); "
                                "was it made with another network?")
            out[mode] = self.finish(mode).apply(v[None])[0]
        return out

    def stored_rows(self, image_id: int) -> dict[str, np.ndarray]:
        if not isinstance(image_id, (int, np.integer)) or not 0 <= int(image_id) < self.index.n_images:
            raise UnitOutOfRange(f"Image id {image_id} is out of range: this index holds images 0 to "
                                 f"{self.index.n_images - 1}.")
        return {mode: np.asarray(self.rows(mode)[int(image_id)], np.float32) for mode in MODES}

    def search(self, query: dict[str, np.ndarray], mode: str | dict[str, float] = "content", k: int = 12, *,
               exclude: list[int] | tuple[int, ...] = (), query_print: np.ndarray | None = None,
               reasons: int = 3) -> Found:
        """The *k* paintings closest to *query* (finished rows per mode) by *mode* (a name, a mix like
        ``"content:0.5,style:0.5"``, or {mode: weight}); near-duplicates grouped, copies of the query (by
        *query_print*, default the query's composition row) set apart."""
        weights = parse_mode(mode) if isinstance(mode, str) else parse_mode(
            ",".join(f"{m}:{w}" for m, w in mode.items()))
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise UserError(f"The number of similar paintings must be a whole number ≥ 0, not {k!r}.")
        n = self.index.n_images
        if k == 0 or n == 0:
            return Found(weights, [], [])
        total = np.zeros(n, np.float32)
        per_mode = {}
        for m, w in weights.items():
            per_mode[m] = exact_scores(self.rows(m), query[m])
            total += np.float32(w) * per_mode[m]
        prints = self.prints()
        if query_print is None:
            query_print = np.asarray(query["composition"], np.float32)
        candidates = best(total, k + EXTRA, exclude)
        same, groups = group_duplicates(candidates, lambda i: np.asarray(prints[i], np.float32), query_print,
                                        DUPLICATE_COSINE)
        found = []
        for group in groups[:k]:
            i = group[0]
            why = []
            for m, w in weights.items():
                row = np.asarray(self.rows(m)[i], np.float32)
                if m == "style":
                    why += [_weighted(r, w) for r in layer_reasons(self.spec.style, self.finish(m).blocks,
                                                                   query[m], row, reasons)]
                else:
                    layer = self.spec.content if m == "content" else self.spec.composition
                    units = self.index.channels(layer) if layer in self.index.layers else _units(row, m, self.spec)
                    why += [_weighted(r, w) for r in unit_reasons(m, layer, query[m], row, units, reasons)]
            why.sort(key=lambda r: -r.share)
            found.append(Neighbour(i, float(total[i]), {m: float(s[i]) for m, s in per_mode.items()},
                                   why[:reasons], group[1:]))
        return Found(weights, found, same)

    def duplicates_of(self, image_id: int) -> list[int]:
        """The other copies of a painting in the collection (fingerprints at least :data:`DUPLICATE_COSINE`)."""
        p = np.asarray(self.prints()[int(image_id)], np.float32)
        scores = exact_scores(self.prints(), p)
        scores[int(image_id)] = -np.inf
        return [int(i) for i in np.flatnonzero(scores >= DUPLICATE_COSINE)
                if cosine(self.prints()[i], p) >= DUPLICATE_COSINE]


def _units(row: np.ndarray, mode: str, spec: SimilaritySpec) -> int:
    return len(row) // (spec.grid * spec.grid) if mode == "composition" else len(row)


def _weighted(reason, weight: float):
    from dataclasses import replace

    return replace(reason, share=reason.share * weight)


def require_known(mode: str) -> None:
    """A clear error for a mode that does not exist (used by the CLI and the API before any work)."""
    parse_mode(mode)
