"""Concept directions: a vector in the channel space of one layer, stored as a small safetensors file.

The file format (what ``imagemachines accentuate --direction FILE`` reads, and what a concept tool writes):

- one tensor ``direction``: float32, shape ``(C,)``, C = the layer's channels;
- metadata (safetensors' string header): ``layer`` (required: the layer name, e.g. ``features.14``), and, when
  known, ``model`` (the model's name), ``weights_id`` (its exact weights, as in every recipe) and ``name`` (a
  label for pictures and file names, e.g. ``haloes``). ``format`` is ``imagemachines.direction/1``.

A direction made with other weights than the model it is used with is refused (its channels would mean other
things). Nothing is unpickled: safetensors holds only numbers and strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from imagemachines.errors import UserError

FORMAT = "imagemachines.direction/1"
TENSOR = "direction"
MAX_BYTES = 64 * 1024 * 1024  # no layer has millions of channels; a larger file is not a direction


@dataclass(frozen=True)
class ConceptDirection:
    """A direction *vector* (C,) in the channel space of *layer*; *name* labels it in pictures and file names."""

    layer: str
    vector: torch.Tensor = field(repr=False)
    name: str = "direction"
    model: str | None = None
    weights_id: str | None = None

    def __str__(self) -> str:
        return f"{self.layer}:{self.name}"

    @property
    def slug(self) -> str:
        """A file-name-safe label."""
        return f"{self.layer.replace('.', '-')}_{re.sub(r'[^A-Za-z0-9_-]+', '-', self.name).strip('-') or 'dir'}"

    def check(self, model) -> None:
        """Raise a clear error unless *model* has this layer, with as many channels, and the same weights."""
        if self.weights_id is not None and self.weights_id != model.weights_id:
            raise UserError(f"Direction {self.name!r} was made with weights {self.weights_id}, not with "
                            f"{model.name!r}'s ({model.weights_id}): its channels mean other things there. Use the "
                            "model it was made with.")
        info = model.layer(self.layer)
        if self.vector.numel() != info.channels:
            raise UserError(f"Direction {self.name!r} has {self.vector.numel()} values but layer {self.layer!r} of "
                            f"{model.name!r} has {info.channels} channels.")


def save_direction(path: Path, vector: torch.Tensor, layer: str, *, name: str | None = None,
                   model: str | None = None, weights_id: str | None = None) -> Path:
    """Write a direction file (see the module's docstring)."""
    from safetensors.torch import save_file

    from imagemachines.fileio import atomic_write

    path = Path(path)
    vector = torch.as_tensor(vector, dtype=torch.float32).detach().cpu().reshape(-1).contiguous()
    meta = {"format": FORMAT, "layer": layer, "name": name or path.stem}
    meta |= {k: v for k, v in (("model", model), ("weights_id", weights_id)) if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file({TENSOR: vector}, str(tmp), metadata=meta))
    return path


def load_direction(path: Path) -> ConceptDirection:
    """Read a direction file; a clear :class:`UserError` for anything else."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"No such direction file: {path}. Give a .safetensors file with a 'direction' vector.")
    if path.stat().st_size > MAX_BYTES:
        raise UserError(f"{path} is {path.stat().st_size:,} bytes: too large for a direction (one vector).")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            names = list(f.keys())
            if TENSOR not in names:
                raise UserError(f"{path} has no tensor {TENSOR!r} (it has {', '.join(names) or 'none'}): it is "
                                "not a direction file.")
            vector = f.get_tensor(TENSOR)
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"Cannot read {path} as a safetensors direction file ({exc}).") from None
    if vector.ndim != 1 or vector.numel() == 0 or not vector.dtype.is_floating_point:
        raise UserError(f"{path}: {TENSOR!r} must be a non-empty float vector; it has shape "
                        f"{tuple(vector.shape)} and type {vector.dtype}.")
    vector = vector.float()
    if not torch.isfinite(vector).all():
        raise UserError(f"{path}: the direction has values that are not finite (NaN or infinite).")
    if not vector.abs().sum() > 0:
        raise UserError(f"{path}: the direction is all zero; it points nowhere.")
    layer = meta.get("layer")
    if not layer:
        raise UserError(f"{path} does not say its layer: its metadata needs a 'layer' entry (e.g. features.14).")
    return ConceptDirection(layer, vector, meta.get("name") or path.stem, meta.get("model"), meta.get("weights_id"))
