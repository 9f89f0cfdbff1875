"""The forward pass: one tapped pass per batch over every chosen layer, summarised per unit and per image.

For each layer and image: every unit's value (its maximum as the index's ranking takes it, see
:mod:`imagemachines.index.peaks`), the cell where it is, whether the maximum over all cells is on the map's
border, and the spatial mean (the pooled activation). Per chunk of images, the summaries feed a
:class:`UnitAccumulator` per layer and are written to the chunk's file; memory is one chunk's pooled rows plus
units × k.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from imagemachines.index.accumulate import UnitAccumulator
from imagemachines.index.peaks import DEFAULT_RANKING, LEGACY_RANKING, network_input, painting_cells, peaks
from imagemachines.index.similarity_vectors import SimilaritySpec
from imagemachines.index.store import chunk_file, save_tensors
from imagemachines.models.loaded import LoadedModel
from imagemachines.train.data import ImageFiles, Sample, collate


def summarise(outputs: dict[str, torch.Tensor], layers: Sequence[str], ranking: str = LEGACY_RANKING,
              shapes: dict[str, tuple[int, int]] | None = None) -> dict[str, tuple]:
    """Per layer: (:class:`~imagemachines.index.peaks.Peaks` [B, C] each, spatial mean [B, C]), over the cells
    that cover the painting (*shapes*: each layer's map size, for ``reflect``)."""
    result = {}
    for name in layers:
        a = outputs[name]
        if shapes is not None and name in shapes:
            a = painting_cells(a, ranking, shapes[name])
        flat = a.flatten(2) if a.ndim == 4 else a.reshape(a.shape[0], a.shape[1], 1)
        result[name] = (peaks(a, ranking), flat.float().mean(dim=2))
    return result


def preprocess(model: LoadedModel):
    """The model's own evaluation transform (the one training validates with): squash to the input square."""
    from imagemachines.train.augment import eval_transform

    return eval_transform(model.input_size, model.mean, model.std)


def run_chunks(model: LoadedModel, root: Path, index_dir: Path, conn: sqlite3.Connection, chunks: list[int],
               layers: dict[str, int], k: int, *, pooled: bool, batch_size: int, workers: int,
               on_batch: Callable[[int], None] | None = None, similarity: SimilaritySpec | None = None,
               ranking: str = DEFAULT_RANKING) -> int:
    """Process *chunks* (ids from the table) and commit each; returns the number of images read. With
    *similarity*, also each image's raw similarity vectors (its layers are tapped in the same pass, over the
    cells that cover the painting, as the units' values are under *ranking*)."""
    plan: list[tuple[int, list[int]]] = []
    samples: list[Sample] = []
    keys: list[int] = []
    for cid in chunks:
        rows = conn.execute("SELECT key, path FROM images WHERE chunk = ? ORDER BY path", (cid,)).fetchall()
        start = len(samples)
        samples += [Sample(root / path, 0) for _, path in rows]
        keys += [key for key, _ in rows]
        plan.append((cid, list(range(start, len(samples)))))
    batches: list[list[int]] = []
    owner: list[int] = []  # chunk position of every batch
    for pos, (_cid, idx) in enumerate(plan):
        for s in range(0, len(idx), batch_size):
            batches.append(idx[s:s + batch_size])
            owner.append(pos)
    if not samples:
        for cid, _ in plan:
            _commit(conn, index_dir, cid, {}, [], [], layers, k, pooled, similarity=similarity)
        return 0
    loader = torch.utils.data.DataLoader(ImageFiles(samples, preprocess(model)), batch_sampler=batches,
                                         collate_fn=collate, num_workers=workers)
    tapped = list(dict.fromkeys([*layers, *(similarity.layers if similarity else [])]))
    tap = model.tap(tapped)
    shapes = {name: (model.layer(name).height, model.layer(name).width) for name in tapped}
    if similarity is not None:
        from imagemachines.index.similarity_store import batch_vectors, projections

        projection = projections(similarity)
    device = model.device
    key_tensor = torch.tensor(keys, dtype=torch.int64)
    state = _ChunkState(layers, k, device)
    with torch.inference_mode():
        for b, batch in enumerate(loader):
            pos = owner[b]
            if batch.bad:
                state.bad += [(keys[i], why) for i, why in batch.bad]
            if len(batch):
                x = network_input(batch.images.to(device, non_blocking=True), ranking)
                outputs = tap(x)
                summary = summarise(outputs, list(layers), ranking, shapes)
                state.add(summary, key_tensor[batch.indices], pooled)
                if similarity is not None:
                    painted = {name: painting_cells(outputs[name], ranking, shapes[name]) for name in similarity.layers}
                    state.add_similar(batch_vectors(painted, similarity, projection))
            if on_batch is not None:
                on_batch(len(batch) + len(batch.bad))
            last_of_chunk = b + 1 == len(batches) or owner[b + 1] != pos
            if last_of_chunk:
                _commit(conn, index_dir, plan[pos][0], state.accs, state.rows, state.bad, layers, k, pooled,
                        state.pooled, state.maxima, similarity, state.similar)
                state = _ChunkState(layers, k, device)
    return len(samples)


class _ChunkState:
    def __init__(self, layers: dict[str, int], k: int, device):
        self.accs = {name: UnitAccumulator.empty(c, k, device) for name, c in layers.items()}
        self.pooled: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
        self.maxima: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
        self.rows: list[torch.Tensor] = []
        self.bad: list[tuple[int, str]] = []
        self.similar: dict[str, list[torch.Tensor]] = {}

    def add(self, summary: dict[str, tuple], keys: torch.Tensor, pooled: bool) -> None:
        self.rows.append(keys)
        for name, (found, mean) in summary.items():
            self.accs[name].update(found.value, found.cell, keys, found)
            self.maxima[name].append(found.value.to("cpu", torch.float16))
            if pooled:
                self.pooled[name].append(mean.to("cpu", torch.float16))

    def add_similar(self, vectors: dict[str, torch.Tensor]) -> None:
        for name, v in vectors.items():
            self.similar.setdefault(name, []).append(v.to("cpu", torch.float16))


def _commit(conn, index_dir, cid, accs, rows, bad, layers, k, pooled, pooled_rows=None, maxima_rows=None,
            similarity: SimilaritySpec | None = None, similar_rows=None) -> None:
    """Write the chunk's file, then mark its images and the chunk done in one transaction."""
    keys = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.int64)
    tensors: dict[str, torch.Tensor] = {"keys": keys}
    for name, c in layers.items():
        acc = accs.get(name) or UnitAccumulator.empty(c, k)
        tensors.update(acc.tensors(f"{name}/"))
        mx = (maxima_rows or {}).get(name) or []
        tensors[f"{name}/maxima"] = torch.cat(mx) if mx else torch.zeros(0, c, dtype=torch.float16)
        if pooled:
            pr = (pooled_rows or {}).get(name) or []
            tensors[f"{name}/pooled"] = torch.cat(pr) if pr else torch.zeros(0, c, dtype=torch.float16)
    if similarity is not None:  # raw similarity vectors: finished over the whole collection at the merge
        for raw in ("content", "style", "grid"):
            got = (similar_rows or {}).get(raw) or []
            tensors[f"similar/{raw}"] = (torch.cat(got) if got
                                         else torch.zeros(0, similarity.width(raw), dtype=torch.float16))
    save_tensors(chunk_file(index_dir, cid), tensors)
    with conn:
        conn.executemany("UPDATE images SET status = 'ok', error = NULL WHERE key = ?",
                         [(int(key),) for key in keys.tolist()])
        conn.executemany("UPDATE images SET status = 'bad', error = ? WHERE key = ?", [(why, key) for key, why in bad])
        conn.execute("UPDATE chunks SET state = 'done' WHERE id = ?", (cid,))
