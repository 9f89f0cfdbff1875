"""``build_index``: one streaming pass over an image folder → an index directory (see :mod:`.store`).

Steps: scan the folder and sync the image table (hashes; new, changed, removed images), join metadata, plan
chunks of queued images, run the tapped forward pass chunk by chunk (committing each), merge all chunks
into the final files, write the manifest. Re-running does only what is new; a killed run resumes.
Under torchrun, rank 0 syncs and merges, every rank runs its share of the chunks (chunk i → rank i mod N),
and the merge is exact, so N processes give the same index as one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from imagemachines import __version__
from imagemachines.errors import UserError
from imagemachines.index.duplicates import duplicate_groups
from imagemachines.index.metadata import find_subset_csv, read_metadata
from imagemachines.index.peaks import DEFAULT_RANKING, LEGACY_RANKING, border_chance, check_ranking
from imagemachines.index.scan import scan_folder
from imagemachines.index.store import DATABASE, FORMAT, MANIFEST, connect, read_manifest, write_manifest
from imagemachines.models.loaded import LoadedModel
from imagemachines.models.taps import LOGITS

DEFAULT_K = 32
DEFAULT_CHUNK = 512
SKIP_TYPES = {"Dropout", "Dropout2d", "Identity", "Flatten"}


def default_layers(model: LoadedModel) -> list[str]:
    """The top-level blocks and ``logits``: containers whose children are listed, dropout and the last
    linear layer (the same numbers as ``logits``) left out. Before a block that closes with a saturating
    activation (MobileNetV2's ReLU6), also its pre-activation (``features.18.1``): rankings use it
    (:func:`imagemachines.models.clamps.ranking_layer`), since the block's own values tie at the bound."""
    from imagemachines.models.clamps import ranking_layer

    blocks = model.layers()
    names = [b.name for b in blocks]
    chosen = [b.name for b in blocks
              if b.type not in SKIP_TYPES and not any(n.startswith(b.name + ".") for n in names)]
    if LOGITS in chosen:
        before = [b for b in blocks if b.name in chosen and b.name != LOGITS]
        logits = model.layer(LOGITS)
        if before and before[-1].type == "Linear" and before[-1].channels == logits.channels:
            chosen.remove(before[-1].name)
    return [tap for name in chosen for tap in dict.fromkeys((ranking_layer(model, name), name))]


def choose_layers(model: LoadedModel, layers: Sequence[str] | str | None) -> list[str]:
    """*layers*: None (default blocks + logits), ``"all"``, or names (checked; clear error for unknown ones)."""
    if layers is None or (isinstance(layers, (list, tuple)) and not layers):
        return default_layers(model)
    if isinstance(layers, str):
        layers = [s.strip() for s in layers.split(",") if s.strip()]
    if list(layers) == ["all"]:
        return [info.name for info in model.layers(all=True) if info.type not in SKIP_TYPES]
    order = {info.name: i for i, info in enumerate(model.layers(all=True))}
    for name in layers:
        model.layer(name)  # UnknownLayer with suggestions
    return sorted(dict.fromkeys(layers), key=order.__getitem__)


def default_out(image_dir: Path, model: LoadedModel) -> Path:
    """``<parent of IMAGE_DIR>/index/<IMAGE_DIR name>-<model>``: indexes of a data folder sit together."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model.name).strip("-") or "model"
    image_dir = Path(image_dir).resolve()
    return image_dir.parent / "index" / f"{image_dir.name}-{slug}"


def _settings(model: LoadedModel, image_dir: Path, layers: list[str], k: int, pooled: bool, similarity,
              ranking: str) -> dict:
    return {"format": FORMAT, "weights_id": model.weights_id, "image_root": str(Path(image_dir).resolve()),
            "image_size": model.input_size, "layers": layers, "k": k, "pooled": pooled, "ranking": ranking,
            "similarity": similarity.as_dict() if similarity is not None else None}


def _similarity(model: LoadedModel, pooled: bool):
    """The similarity modes' layers (:func:`~imagemachines.index.similarity_vectors.model_spec`); None without
    pooled activations or for a network without a convolutional block."""
    from imagemachines.index.similarity_vectors import model_spec

    if not pooled:
        return None
    try:
        return model_spec(model)
    except UserError:
        return None


def _prepare_dir(out: Path, settings: dict, rebuild: bool) -> None:
    """Create *out*, or check that the index in it was made with the same settings (else a clear error)."""
    db = out / DATABASE
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the index.")
    if rebuild and db.exists():
        for name in (MANIFEST, DATABASE, DATABASE + "-wal", DATABASE + "-shm"):
            (out / name).unlink(missing_ok=True)
        for folder in ("chunks", "layers", "maxima", "pooled", "similar"):
            shutil.rmtree(out / folder, ignore_errors=True)
    if out.is_dir() and any(out.iterdir()) and not db.exists():
        raise UserError(f"--out {out} is a folder that holds other files, not an index. Give an empty or new "
                        "folder (an index is written there).")
    out.mkdir(parents=True, exist_ok=True)
    conn = connect(out)
    try:
        row = conn.execute("SELECT value FROM settings WHERE name = 'build'").fetchone()
        if row is None:
            with conn:
                conn.execute("INSERT INTO settings (name, value) VALUES ('build', ?)", (json.dumps(settings),))
            return
        old = json.loads(row[0])
        if "ranking" not in old:  # made before rankings and border counts were recorded
            old["ranking"] = f"{LEGACY_RANKING} (no border counts)"
        same_but_modes = all(old.get(key) == settings[key] for key in settings if key != "similarity")
        if old.get("similarity") != settings["similarity"] and settings["similarity"] is not None and same_but_modes:
            # an index made before the similarity modes, or before the present style statistic: every chunk is
            # computed again (one pass) to add them; the old files serve until the merge replaces them
            with conn:
                conn.execute("UPDATE settings SET value = ? WHERE name = 'build'", (json.dumps(settings),))
                conn.execute("UPDATE chunks SET state = 'planned'")
            print(f"The index in {out} gets this version's similarity modes: every image is read again "
                  "(one pass).", file=sys.stderr)
            return
        diff = [f"{key}: {old.get(key)!r} → {settings[key]!r}" for key in settings if old.get(key) != settings[key]]
        if diff:
            raise UserError(f"The index in {out} was built with other settings ({'; '.join(diff)}). Give another "
                            "--out, or --rebuild to replace it.")
    finally:
        conn.close()


def _remember_metadata(conn, metadata: Path | None) -> Path | None:
    """The --metadata CSV of this run, stored for the next runs; or the one an earlier run was given."""
    if metadata is not None:
        path = Path(metadata).resolve()
        with conn:
            conn.execute("INSERT OR REPLACE INTO settings (name, value) VALUES ('metadata', ?)", (str(path),))
        return path
    row = conn.execute("SELECT value FROM settings WHERE name = 'metadata'").fetchone()
    return Path(row[0]) if row else None


def build_index(model: LoadedModel, image_dir: Path, out: Path | None = None, *,
                layers: Sequence[str] | str | None = None, k: int = DEFAULT_K, pooled: bool = True,
                metadata: Path | None = None, batch_size: int | None = None, progress: bool = True,
                workers: int | None = None, chunk_size: int = DEFAULT_CHUNK, rebuild: bool = False,
                rehash: bool = False, model_ref: str | None = None, weights: str | None = None,
                images: Sequence[Path | str] | None = None, ranking: str = DEFAULT_RANKING) -> Path:
    """Index *image_dir* for *model*; returns the index directory (see the module doc). Incremental and
    resumable: run it again after adding, changing or removing images, or after an interruption.

    *images* (paths in *image_dir*, e.g. from :func:`imagemachines.index.sampling.sample_images`) indexes only
    those; run again with other images, the index follows (as if the others had been removed).

    *ranking* says where a unit's value on a painting is taken (:mod:`imagemachines.index.peaks`): ``interior``
    (default), ``reflect`` or ``full``.

    *model_ref* / *weights* record how to load the model again (for ``examples``); by default the model's
    name. Under torchrun (``WORLD_SIZE`` > 1) the processes share the work and rank 0 writes the result.
    """
    from imagemachines.train import distributed

    if k < 1:
        raise UserError("--k must be at least 1.")
    if batch_size is not None and batch_size < 1:
        raise UserError("--batch-size must be at least 1.")
    if chunk_size < 1:
        raise UserError("--chunk must be at least 1.")
    check_ranking(ranking)
    image_dir = Path(image_dir)
    names = choose_layers(model, layers)
    shapes = {n: model.layer(n) for n in names}
    out = Path(out) if out is not None else default_out(image_dir, model)
    similarity = _similarity(model, pooled)
    settings = _settings(model, image_dir, names, k, pooled, similarity, ranking)
    dist = distributed.from_env()
    device = distributed.setup(dist, model.device)
    if device != model.device:
        model.to(device)
    try:
        if dist.main:
            files = scan_folder(image_dir) if images is None else _only(scan_folder(image_dir), image_dir, images)
            _prepare_dir(out, settings, rebuild)
        distributed.barrier(dist)
        return _build(model, image_dir, out, names, shapes, k, pooled, metadata, batch_size, progress, workers,
                      chunk_size, rehash, model_ref, weights, dist, files if dist.main else None, ranking,
                      similarity)
    finally:
        distributed.teardown(dist)


def _only(files: list, image_dir: Path, images: Sequence[Path | str]) -> list:
    """The scanned *files* that *images* (paths as given: absolute or relative to the working folder) name."""
    plain, real = Path(os.path.abspath(image_dir)), image_dir.resolve()
    wanted = set()
    for p in images:
        full = Path(os.path.abspath(p))
        for base, path in ((plain, full), (real, full.resolve())):
            if path.is_relative_to(base):
                wanted.add(path.relative_to(base).as_posix())
                break
        else:
            raise UserError(f"{p} is not in the image folder {image_dir}; give images from that folder.")
    chosen = [f for f in files if f.path in wanted]
    missing = sorted(wanted - {f.path for f in chosen})
    if missing:
        raise UserError(f"{len(missing)} of the images given are not images of {image_dir} "
                        f"(e.g. {missing[0]}); give image files from that folder.")
    if not chosen:
        raise UserError("No images given to index: give at least one.")
    return chosen


def _build(model, image_dir, out, names, shapes, k, pooled, metadata, batch_size, progress, workers, chunk_size,
           rehash, model_ref, weights, dist, files, ranking, similarity=None) -> Path:
    from tqdm.auto import tqdm

    from imagemachines.index.merge import HIST_BINS, QUANTILES, merge_all
    from imagemachines.index.passes import run_chunks
    from imagemachines.index.sync import plan_chunks, set_metadata, sync_images
    from imagemachines.train import distributed
    from imagemachines.train.config import default_workers

    conn = connect(out)
    try:
        meta_columns: list[str] = []
        meta_files: list[str] = []
        if dist.main:
            if (out / MANIFEST).exists():
                previous = read_manifest(out)
                write_manifest(out, {**previous, "complete": False})
            sync_images(conn, out, image_dir, files, rehash=rehash, progress=progress)
            paths = [f.path for f in files]
            joined: dict[str, dict] = {}
            metadata = _remember_metadata(conn, metadata)
            sources = [p for p in (find_subset_csv(image_dir), metadata) if p]
            for src in sources:
                cols, found = read_metadata(src, image_dir, paths)
                meta_columns += [c for c in cols if c not in meta_columns]
                meta_files.append(str(Path(src).resolve()))
                for p, values in found.items():
                    joined.setdefault(p, {}).update(values)
            set_metadata(conn, joined)
            plan_chunks(conn, out, chunk_size)
        distributed.barrier(dist)
        chunks = [r[0] for r in conn.execute("SELECT id FROM chunks WHERE state = 'planned' ORDER BY id")]
        mine = chunks[dist.rank::dist.world]
        todo = conn.execute(f"SELECT COUNT(*) FROM images WHERE chunk IN ({','.join('?' * len(mine))})",
                            mine).fetchone()[0] if mine else 0
        bs = batch_size or (64 if model.device.type == "cuda" else 16)
        nworkers = default_workers(model.device.type) if workers is None else workers
        channels = {n: shapes[n].channels for n in names}
        with tqdm(total=todo, desc=f"indexing {image_dir.name}", unit="img", dynamic_ncols=True,
                  disable=not progress or not dist.main or todo == 0) as bar:
            run_chunks(model, image_dir, out, conn, mine, channels, k, pooled=pooled, batch_size=bs,
                       workers=nworkers, on_batch=bar.update, similarity=similarity, ranking=ranking)
        distributed.barrier(dist)
        if dist.main:
            left = conn.execute("SELECT COUNT(*) FROM chunks WHERE state = 'planned'").fetchone()[0]
            if left:
                raise UserError(f"{left} chunks of images were not finished; run the same command again to "
                                "complete the index.")
            n = merge_all(out, conn, channels, k, pooled, similarity=similarity)
            bad = conn.execute("SELECT path, error FROM images WHERE status = 'bad' ORDER BY path").fetchall()
            copies = [[path for _, path in group] for group in duplicate_groups(conn)]
            now = datetime.now(UTC).isoformat(timespec="seconds")
            created = read_manifest(out).get("created", now) if (out / MANIFEST).exists() else now
            write_manifest(out, {
                "format": FORMAT, "complete": True, "version": __version__,
                "model": model.name, "model_ref": model_ref or model.name, "weights": weights,
                "weights_id": model.weights_id, "source": model.source,
                "class_names": list(model.class_names or []),
                "image_root": str(image_dir.resolve()), "image_size": model.input_size,
                "layers": channels,
                "layer_shapes": {nm: [shapes[nm].channels, shapes[nm].height, shapes[nm].width] for nm in names},
                "k": k, "pooled": pooled, "ranking": ranking,
                "border_chance": {nm: border_chance(shapes[nm].height, shapes[nm].width) for nm in names},
                "n_images": n, "n_unreadable": len(bad),
                **({"similarity": similarity.as_dict()} if similarity is not None else {}),
                "unreadable": [list(b) for b in bad[:200]],
                "n_duplicates": sum(len(g) - 1 for g in copies), "duplicates": copies[:200],
                "metadata_columns": meta_columns, "metadata_files": meta_files,
                "histogram_bins": HIST_BINS, "quantiles": list(QUANTILES),
                "created": created, "updated": now,
            })
        distributed.barrier(dist)
    finally:
        conn.close()
    return out
