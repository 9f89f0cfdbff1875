"""Models: load by registry name, weights file or training run; preprocessing and layer tables.

>>> model = load_model("mobilenet_v2")            # torchvision weights, downloaded on first use
>>> [layer.name for layer in model.layers()][:3]
"""

from __future__ import annotations

from pathlib import Path

import torch

from imagemachines.errors import UserError
from imagemachines.models.loaded import LayerInfo, LoadedModel
from imagemachines.models.registry import (
    DEFAULT_MODEL,
    available_models,
    load_registry_model,
    load_weights_file,
)
from imagemachines.models.taps import LOGITS, LayerTap

__all__ = [
    "DEFAULT_MODEL", "LOGITS", "LayerInfo", "LayerTap", "LoadedModel", "available_models", "load_model",
    "resolve_device",
]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) picks cuda, then mps, then cpu; anything else is checked and returned."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UserError(f"Unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps.") from exc
    if dev.type == "cpu":
        return dev
    backend = {"mps": getattr(torch.backends, "mps", None)}.get(dev.type, getattr(torch, dev.type, None))
    if backend is None or not getattr(backend, "is_available", lambda: False)():
        raise UserError(f"Device {device!r} asked for, but {dev.type.upper()} is not available here. "
                        "Use --device cpu (or auto).")
    count = getattr(backend, "device_count", None)
    if dev.index is not None and count is not None and dev.index >= count():
        raise UserError(f"Device {device!r} asked for, but there are only {count()} {dev.type} devices here "
                        f"(0 to {count() - 1}). Use --device {dev.type} or cpu.")
    return dev


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    weights: str | Path | None = "imagenet",
    device: str | torch.device | None = "cpu",
) -> LoadedModel:
    """Load a model ready for visualization.

    *name* is a torchvision classification model name (``mobilenet_v2``, ``inception_v3``…) or a run directory
    written by ``imagemachines train``. *weights* is ``"imagenet"`` (the model's first ImageNet weights,
    IMAGENET1K_V1, downloaded on first use), ``"DEFAULT"`` (torchvision's current default), a weights enum
    name, ``"none"`` (random init), or a path to a local state dict file (.pth, .pt, .safetensors).
    """
    dev = resolve_device(device)
    path = Path(str(name)).expanduser()
    if path.is_dir():
        from imagemachines.models.checkpoint import load_run_dir

        return load_run_dir(path, device=dev)
    if weights is not None and str(weights) not in ("imagenet", "DEFAULT", "default", "none") and (
        isinstance(weights, Path) or Path(str(weights)).expanduser().suffix in (".pth", ".pt", ".safetensors")
    ):
        return load_weights_file(name, Path(str(weights)).expanduser(), device=dev)
    return load_registry_model(name, None if weights is None else str(weights), device=dev)
