"""Top and bottom paintings of a unit from a collection index, with heat overlays (needs ``imagemachines.index``)."""

from __future__ import annotations

from pathlib import Path

from imagemachines.errors import UserError


def open_matching_index(path: Path, model):
    """The index at *path*, checked to be of *model*'s weights."""
    try:
        from imagemachines.index import open_index
    except ImportError as exc:  # pragma: no cover - the index part is absent from this build
        raise UserError("--index needs the collection index (imagemachines.index), which this build lacks.") from exc
    index = open_index(Path(path))
    if index.weights_id != model.weights_id:
        raise UserError(f"The index {path} was built with weights {index.weights_id!r}, the atlas model has "
                        f"{model.weights_id!r}: build an index of the same model.")
    return index


def unit_examples(index, model, layer: str, channel: int, folder: Path) -> dict | None:
    raise NotImplementedError
