"""Model registry: torchvision classification models by name, with their pretrained weights.

Weights go through torchvision's weights API: downloaded on first use, hash-checked, cached in
``$TORCH_HOME/hub/checkpoints``. When the download fails (offline), the error names the file to put there.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torchvision

from imagemachines.errors import BadCheckpoint, UnknownModel, WeightsUnavailable, did_you_mean
from imagemachines.models.loaded import LoadedModel

DEFAULT_MODEL = "mobilenet_v2"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def available_models() -> list[str]:
    """Names of every torchvision classification model."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def checkpoint_dir() -> Path:
    """Where torchvision caches downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _check_name(name: str) -> None:
    if name not in available_models():
        raise UnknownModel(
            f"Unknown model {name!r}.{did_you_mean(name, available_models())} "
            "Use a torchvision classification model name (`imagemachines models` lists them), "
            "a weights file with --weights, or a run directory written by `imagemachines train`."
        )


def _weights_enum(name: str, weights: str | None):
    """'imagenet' = the first ImageNet weights (IMAGENET1K_V1): the original training recipes, whose features
    the visualization literature studies; 'DEFAULT' = torchvision's current best; or an enum name."""
    enum = torchvision.models.get_model_weights(name)
    if weights in (None, "imagenet"):
        return enum.__members__.get("IMAGENET1K_V1", enum.DEFAULT)
    if weights in ("default", "DEFAULT"):
        return enum.DEFAULT
    try:
        return enum[weights.split(".")[-1]]
    except KeyError:
        names = [w.name for w in enum]
        raise WeightsUnavailable(
            f"Model {name!r} has no weights {weights!r}. Choose imagenet, DEFAULT, none, a file, or one of: "
            f"{', '.join(names)}."
        ) from None


def _download_hint(w) -> str:
    filename = os.path.basename(w.url)
    return (
        f"Could not get the pretrained weights {w} ({filename}). imagemachines downloads them on first use; "
        f"this machine seems to be offline. Copy {filename} into {checkpoint_dir()}/ "
        "(or set TORCH_HOME to a folder whose hub/checkpoints/ holds it) and run again."
    )


def _meta_from_weights(w) -> tuple[tuple, tuple, int, list[str] | None]:
    tf = w.transforms()
    mean = tuple(float(v) for v in getattr(tf, "mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in getattr(tf, "std", IMAGENET_STD))
    crop = getattr(tf, "crop_size", [224])
    size = int(crop[0] if isinstance(crop, (list, tuple)) else crop)
    return mean, std, size, list(w.meta.get("categories") or []) or None


def load_registry_model(
    name: str, weights: str | None = "imagenet", device: torch.device | str = "cpu"
) -> LoadedModel:
    """Build torchvision model *name* with pretrained *weights* ('imagenet', 'DEFAULT', an enum name, 'none')."""
    _check_name(name)
    if weights is not None and str(weights).lower() == "none":
        module = torchvision.models.get_model(name, weights=None)
        mean, std, size = IMAGENET_MEAN, IMAGENET_STD, 299 if name == "inception_v3" else 224
        return LoadedModel.wrap(
            name, module, mean=mean, std=std, input_size=size, weights_id="random-init",
            class_names=None, device=device,
        )
    w = _weights_enum(name, weights)
    try:
        module = torchvision.models.get_model(name, weights=w)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash is a RuntimeError
        if isinstance(exc, RuntimeError) and "hash" not in str(exc).lower():
            raise
        raise WeightsUnavailable(_download_hint(w) + f" ({exc})") from exc
    mean, std, size, classes = _meta_from_weights(w)
    return LoadedModel.wrap(
        name, module, mean=mean, std=std, input_size=size, class_names=classes,
        weights_id=f"{type(w).__name__}.{w.name}:{os.path.basename(w.url)}", device=device,
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a safetensors or PyTorch file without unpickling arbitrary objects."""
    if not path.is_file():
        raise BadCheckpoint(f"Weights file {str(path)!r} does not exist.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
        raise BadCheckpoint(
            f"Cannot read weights from {str(path)!r}: {exc}. Give a safetensors file or a PyTorch state dict "
            "(pickled objects other than tensors are refused for safety)."
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadCheckpoint(f"{str(path)!r} does not hold a state dict of tensors.")
    return state


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


INCEPTION_STYLE = ("inception_v3", "googlenet")
TF_MEAN = TF_STD = (0.5, 0.5, 0.5)  # inputs in [-1, 1]: what torchvision's transform_input computes internally


def _num_classes(state: dict[str, torch.Tensor]) -> int | None:
    """The number of classes: rows of the state dict's last 2-D weight (the classifier)."""
    last = None
    for key, value in state.items():
        if key.endswith("weight") and value.ndim == 2:
            last = value
    return int(last.shape[0]) if last is not None else None


def load_weights_file(name: str, path: Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Architecture *name* with a local state dict (any number of classes).

    Inception-style networks get ``transform_input=False`` and inputs in [-1, 1], which is what their
    torchvision-pretrained weights (and fine-tunes of them) expect.
    """
    _check_name(name)
    state = read_state_dict(path)
    kwargs: dict = {}
    n = _num_classes(state)
    if n is not None:
        kwargs["num_classes"] = n
    if name in INCEPTION_STYLE:
        kwargs |= {"aux_logits": any(k.startswith(("aux", "AuxLogits")) for k in state),
                   "init_weights": False, "transform_input": False}
    try:
        module = torchvision.models.get_model(name, weights=None, **kwargs)
        module.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise BadCheckpoint(
            f"{str(path)!r} does not fit {name!r}: {str(exc).splitlines()[0]} "
            "Check that the file was saved from this architecture."
        ) from exc
    mean, std = (TF_MEAN, TF_STD) if name in INCEPTION_STYLE else (IMAGENET_MEAN, IMAGENET_STD)
    return LoadedModel.wrap(
        name, module, mean=mean, std=std, input_size=299 if name == "inception_v3" else 224,
        weights_id=f"file:{file_sha256(path)[:16]}", class_names=None, source="file", device=device,
    )
