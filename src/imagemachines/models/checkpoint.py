"""Run directories written by ``imagemachines train``: read them back as models (JSON + safetensors, no pickle).

A run directory holds ``run.json`` (architecture, class names, preprocessing, head, training settings and
metrics) and the weights it names, e.g. ``epochs/07/model.safetensors`` for the best epoch. Each
``epochs/NN/`` folder is itself a run directory for that epoch's weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imagemachines.errors import BadCheckpoint
from imagemachines.models.loaded import LoadedModel

RUN_FILE = "run.json"
FORMAT = "imagemachines-run"
REQUIRED = ("arch", "class_names", "head", "input_size", "mean", "std")
MAX_CLASSES = 100_000  # checked before a head of that many outputs is allocated

Finite = Annotated[float, Field(allow_inf_nan=False)]


class WeightsRecord(BaseModel):
    """``run.json``'s ``weights``: the file (inside the run directory) and its checksum."""

    model_config = ConfigDict(extra="allow")
    file: str = Field(min_length=1, max_length=1000)
    sha256: str | None = Field(None, max_length=128)


class RunDescription(BaseModel):
    """What ``run.json`` must hold for a model to be built from it (other keys are kept, unchecked)."""

    model_config = ConfigDict(extra="allow")
    format: Literal["imagemachines-run"]
    arch: str = Field(min_length=1, max_length=100)
    class_names: list[Annotated[str, Field(max_length=1000)]] = Field(min_length=1, max_length=MAX_CLASSES)
    head: str = Field(min_length=1, max_length=100)
    input_size: int = Field(ge=8, le=8192)
    mean: tuple[Finite, ...] = Field(min_length=3, max_length=3)
    std: tuple[Annotated[float, Field(gt=0, allow_inf_nan=False)], ...] = Field(min_length=3, max_length=3)
    weights: WeightsRecord | None = None
    epoch: int | None = Field(None, ge=0, le=1_000_000)
    name: str | None = Field(None, max_length=200)
    aux_logits: bool = False
    config: dict | None = None
    resume: dict | None = None


def is_run_dir(path: Path) -> bool:
    return (path / RUN_FILE).is_file()


def read_run_json(run_dir: Path) -> dict:
    """The run's metadata, checked for the keys a model needs; :class:`BadCheckpoint` otherwise."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise BadCheckpoint(
            f"{run_dir} is not a training run: it has no {RUN_FILE}. Give a folder written by "
            "`imagemachines train` (its --out), or a model name such as mobilenet_v2."
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadCheckpoint(f"{path} cannot be read ({exc}). The run directory is damaged; retrain or restore "
                            "it from a copy.") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BadCheckpoint(f"{path} is not an imagemachines run description (format {FORMAT!r} expected).")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise BadCheckpoint(f"{path} lacks {', '.join(missing)}. The run directory is damaged; retrain it.")
    try:
        checked = RunDescription.model_validate(meta)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "run.json"
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise BadCheckpoint(f"{path}: {field}: {err['msg']}{more}. The run description is damaged; restore it "
                            "from a copy or retrain the run.") from None
    declared = checked.model_fields_set & set(RunDescription.model_fields)
    return {**meta, **checked.model_dump(include=declared)}  # the declared fields as checked: "224" -> 224


def inside(run_dir: Path, relative: str) -> Path:
    """*relative* resolved under *run_dir*; a path that escapes the folder is refused."""
    root = run_dir.resolve()
    target = (root / relative).resolve() if isinstance(relative, str) and relative else root
    if target == root or not target.is_relative_to(root):
        raise BadCheckpoint(f"{run_dir / RUN_FILE} names a file outside the run directory ({relative!r}); "
                            "refusing to read it.")
    return target


def weights_file(run_dir: Path, meta: dict) -> tuple[Path, str | None]:
    """The weights file the run names and its recorded sha256."""
    weights = meta.get("weights")
    if not weights:
        raise BadCheckpoint(
            f"The run in {run_dir} has not finished an epoch yet, so it has no weights. Let it finish one, or "
            f"continue it with `imagemachines train DATA_DIR --out {run_dir} --resume`."
        )
    path = inside(run_dir, weights.get("file", ""))
    if not path.is_file():
        raise BadCheckpoint(f"The weights file {path} named by {run_dir / RUN_FILE} is missing. Restore it, or "
                            "retrain the run.")
    return path, weights.get("sha256")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file as a dict of CPU tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BadCheckpoint(f"{path} is not a readable safetensors file ({exc}). Restore it or retrain.") from exc


def load_run_dir(path: Path, device: torch.device | str = "cpu") -> LoadedModel:
    """The trained network of run directory *path*, with its preprocessing and class names."""
    from imagemachines.models.heads import rebuild_classifier
    from imagemachines.models.registry import file_sha256

    path = Path(path)
    meta = read_run_json(path)
    wfile, recorded = weights_file(path, meta)
    sha = file_sha256(wfile)
    if recorded and recorded != sha:
        raise BadCheckpoint(
            f"{wfile} does not match the checksum in {path / RUN_FILE}: the file was changed or only partly "
            "written. Restore it, or continue the run with --resume to write it again."
        )
    classes = [str(c) for c in meta["class_names"]]
    try:
        module = rebuild_classifier(meta["arch"], len(classes), meta["head"], bool(meta.get("aux_logits")))
        module.load_state_dict(read_tensors(wfile))
    except RuntimeError as exc:
        raise BadCheckpoint(
            f"The weights in {wfile} do not fit a {meta['arch']} with a {meta['head']} head for {len(classes)} "
            f"classes ({str(exc).splitlines()[0]}). The run directory is inconsistent; retrain it."
        ) from exc
    name = path.resolve().name
    if "epoch" in meta and meta.get("name"):
        name = f"{meta['name']}-epoch{int(meta['epoch']):02d}"
    return LoadedModel.wrap(
        name, module, mean=tuple(float(v) for v in meta["mean"]), std=tuple(float(v) for v in meta["std"]),
        input_size=int(meta["input_size"]), weights_id=f"run:{sha[:16]}", class_names=classes, source="run",
        location=str(path), device=device,
    )
