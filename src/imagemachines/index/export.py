"""``imagemachines export``: an index's painting × unit table with the paintings' metadata, as CSV or Parquet, for
statistics of one's own (R, pandas, a spreadsheet).

One row per indexed painting (in image-id order): ``image_id``, ``path``, ``image_width``, ``image_height``, every
metadata column, then one column per unit: ``LAYER:C`` its value on the painting (the maximum as the index's
ranking takes it, the scale of the examples and percentiles) and/or ``LAYER:C mean`` (the spatial mean, the
pooled activation). Rows are written in blocks, so memory stays bounded whatever the collection's size.

CSV cells that a spreadsheet would run as a formula are written as text (:mod:`imagemachines.csvfiles`). Parquet
needs pyarrow (``pip install 'imagemachines[parquet]'``); values are float32 there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagemachines import csvfiles
from imagemachines.errors import UserError
from imagemachines.fileio import atomic_write

VALUES = ("max", "mean", "both")
FORMATS = {".csv": "csv", ".parquet": "parquet"}
BLOCK = 4096


@dataclass(frozen=True)
class Column:
    """A unit column: *layer*, *channel* and which value (``max`` or ``mean``)."""

    layer: str
    channel: int
    kind: str

    @property
    def name(self) -> str:
        return f"{self.layer}:{self.channel}" + (" mean" if self.kind == "mean" else "")


def unit_columns(index, layers: Sequence[str], values: str = "max", units: str = "all") -> list[Column]:
    """The unit columns of *layers* (checked) for *values* (max | mean | both) and *units* (all, 5, 0-63, …)."""
    from imagemachines.vis.units import parse_channels

    if values not in VALUES:
        raise UserError(f"--values {values!r}: use one of {', '.join(VALUES)}.")
    if not layers:
        raise UserError("Say which layers to export: --layer L (or several, comma-separated).")
    kinds = ("max", "mean") if values == "both" else (values,)
    if "mean" in kinds and not index.manifest.get("pooled", True):
        raise UserError(f"The index in {index.path} was built with --no-pooled: it has no spatial means. Export "
                        "--values max, or rebuild the index without --no-pooled.")
    columns = []
    for layer in layers:
        index.check_layer(layer)
        for c in parse_channels(units, index.channels(layer)):
            columns.extend(Column(layer, c, kind) for kind in kinds)
    return columns


def _arrays(index, columns: list[Column]) -> dict[tuple[str, str], np.ndarray]:
    arrays = {}
    for col in columns:
        key = (col.layer, col.kind)
        if key not in arrays:
            arrays[key] = index.maxima(col.layer) if col.kind == "max" else index.pooled(col.layer)
    return arrays


def blocks(index, columns: list[Column], block: int = BLOCK) -> Iterator[tuple[list, dict[str, list], np.ndarray]]:
    """Per block of paintings: (their ImageInfo records, {metadata column: values}, values [rows, units] float32)."""
    arrays = _arrays(index, columns)
    meta_columns = list(index.manifest.get("metadata_columns") or [])
    images = index.images()
    by_key: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for j, col in enumerate(columns):
        by_key.setdefault((col.layer, col.kind), []).append((j, col.channel))
    for start in range(0, len(images), block):
        infos = images[start:start + block]
        values = np.empty((len(infos), len(columns)), dtype=np.float32)
        for key, pairs in by_key.items():
            rows = np.asarray(arrays[key][start:start + len(infos)], dtype=np.float32)
            values[:, [j for j, _ in pairs]] = rows[:, [c for _, c in pairs]]
        yield infos, {m: [str(i.meta.get(m, "") or "") for i in infos] for m in meta_columns}, values


def _header(index, columns: list[Column]) -> list[str]:
    meta = list(index.manifest.get("metadata_columns") or [])
    return ["image_id", "path", "image_width", "image_height", *meta, *(c.name for c in columns)]


def write_csv(index, columns: list[Column], out: Path, progress=None) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csvfiles.writer(f)
            writer.writerow(_header(index, columns))
            for infos, meta, values in blocks(index, columns, BLOCK):
                for r, info in enumerate(infos):
                    writer.writerow([info.id, info.path, info.width, info.height, *(v[r] for v in meta.values()),
                                     *(f"{v:.6g}" for v in values[r].tolist())])
                if progress is not None:
                    progress(len(infos))

    atomic_write(out, write)


def write_parquet(index, columns: list[Column], out: Path, progress=None) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("Writing Parquet needs pyarrow: `pip install 'imagemachines[parquet]'` (or pyarrow), or "
                        "export to a .csv file.") from None
    meta_columns = list(index.manifest.get("metadata_columns") or [])
    fields = [pa.field("image_id", pa.int64()), pa.field("path", pa.string()),
              pa.field("image_width", pa.int32()), pa.field("image_height", pa.int32()),
              *(pa.field(m, pa.string()) for m in meta_columns),
              *(pa.field(c.name, pa.float32()) for c in columns)]
    schema = pa.schema(fields, metadata={"imagemachines.index": str(index.path), "ranking": index.ranking,
                                         "model": index.model_name, "weights_id": index.weights_id})

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(str(tmp), schema) as writer:
            for infos, meta, values in blocks(index, columns, BLOCK):
                arrays = [pa.array([i.id for i in infos], pa.int64()), pa.array([i.path for i in infos]),
                          pa.array([i.width for i in infos], pa.int32()),
                          pa.array([i.height for i in infos], pa.int32()),
                          *(pa.array(meta[m], pa.string()) for m in meta_columns),
                          *(pa.array(values[:, j]) for j in range(len(columns)))]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                if progress is not None:
                    progress(len(infos))

    atomic_write(out, write)


def export_table(index, out: Path, layers: Sequence[str], *, values: str = "max", units: str = "all",
                 progress: bool = True) -> Path:
    """Write the painting × unit table of *index* to *out* (``.csv`` or ``.parquet``); returns *out*."""
    from tqdm.auto import tqdm

    out = Path(out)
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise UserError(f"--out {out}: give a file ending in .csv or .parquet.")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name ending in .csv or .parquet.")
    columns = unit_columns(index, layers, values, units)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=index.n_images, desc=f"export {out.name}", unit="painting", disable=not progress) as bar:
        (write_csv if kind == "csv" else write_parquet)(index, columns, out, bar.update)
    return out
