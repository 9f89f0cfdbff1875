"""A map on disk, in the index folder it belongs to (safetensors + JSON, never a pickle):

    INDEX/maps/SOURCE/map.json             what it is: source, parameters, counts, clusters and their labels,
                                           the neighbourhood score, library versions; written last
    INDEX/maps/SOURCE/layout.safetensors   per painting (in the index's row order when it was written):
                                             sha256 [n, 32] uint8   the image's hash, how rows are matched later
                                             xy [n, 2] float32      position in the unit square
                                             cluster [n] int32      -1: unclustered
                                             placed [n] uint8       1: placed into an existing layout
                                           and what placing new paintings needs:
                                             fit_reduced [m, k] float32, fit_xy [m, 2], fit_cluster [m]
                                             pca_mean [dims], pca_components [k, dims] ([0, dims]: no PCA)

SOURCE is the source's name made safe for a file name (a layer: ``features.18``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagemachines.errors import UserError
from imagemachines.fileio import atomic_write
from imagemachines.index.store import safe_name

MAPS = "maps"
META = "map.json"
LAYOUT = "layout.safetensors"
FORMAT = 1
ARRAYS = ("sha256", "xy", "cluster", "placed", "fit_reduced", "fit_xy", "fit_cluster", "pca_mean", "pca_components")


def map_dir(index_path: Path, name: str) -> Path:
    return Path(index_path) / MAPS / safe_name(name)


@dataclass
class StoredMap:
    """A map as written: :data:`META` as a dict and the arrays of :data:`LAYOUT`."""

    meta: dict
    sha256: np.ndarray
    xy: np.ndarray
    cluster: np.ndarray
    placed: np.ndarray
    fit_reduced: np.ndarray
    fit_xy: np.ndarray
    fit_cluster: np.ndarray
    pca_mean: np.ndarray
    pca_components: np.ndarray

    @property
    def name(self) -> str:
        return str(self.meta["source"]["name"])


def sha_bytes(hex_digests: list[str]) -> np.ndarray:
    """[n, 32] uint8 from sha256 hex strings."""
    if not hex_digests:
        return np.zeros((0, 32), dtype=np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hex_digests)), dtype=np.uint8).reshape(-1, 32).copy()


def sha_keys(rows: np.ndarray) -> list[bytes]:
    return [bytes(r) for r in rows]


def save_map(folder: Path, stored: StoredMap) -> None:
    """Write the arrays, then the JSON (atomically each: a map without its JSON does not count)."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.ascontiguousarray(getattr(stored, name)) for name in ARRAYS}
    atomic_write(folder / LAYOUT, lambda tmp: save_file(arrays, str(tmp)))
    text = json.dumps({**stored.meta, "format": FORMAT}, indent=1, ensure_ascii=False) + "\n"
    atomic_write(folder / META, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_meta(folder: Path) -> dict:
    path = Path(folder) / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"The map {path} cannot be read ({exc}); make it again with `imagemachines map --refit`.") \
            from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "source" not in meta:
        raise UserError(f"{path} is not a map of this version; make it again with `imagemachines map --refit`.")
    return meta


def load_map(folder: Path) -> StoredMap:
    """The map in *folder*; a :class:`UserError` saying what to do when it is missing or damaged."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    meta = read_meta(folder)
    try:
        arrays = load_file(str(folder / LAYOUT))
        stored = StoredMap(meta, **{name: arrays[name] for name in ARRAYS})
    except Exception as exc:  # noqa: BLE001 - missing, truncated or foreign file: say so
        raise UserError(f"The layout {folder / LAYOUT} cannot be read ({exc}); make it again with "
                        "`imagemachines map --refit`.") from None
    n = stored.sha256.shape[0]
    if (stored.sha256.shape != (n, 32) or stored.xy.shape != (n, 2) or stored.cluster.shape != (n,)
            or stored.fit_xy.shape[0] != stored.fit_reduced.shape[0]):
        raise UserError(f"The layout {folder / LAYOUT} is inconsistent; make it again with `imagemachines map "
                        "--refit`.")
    return stored


def list_maps(index_path: Path) -> list[str]:
    """The names of the maps stored in an index folder (those with a readable JSON), sorted."""
    root = Path(index_path) / MAPS
    names = []
    for meta in sorted(root.glob(f"*/{META}")) if root.is_dir() else []:
        try:
            names.append(read_meta(meta.parent)["source"]["name"])
        except (UserError, KeyError, TypeError):
            continue
    return sorted(names)
