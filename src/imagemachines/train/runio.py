"""Writing a run directory: atomic files, per-epoch checkpoints, the resume state (safetensors + JSON only).

Order of an epoch's commit: ``epochs/NN/model.safetensors`` and ``optimizer.safetensors``, then
``epochs/NN/run.json``, then ``run.json`` (the commit point: it names the best weights and the resume state),
then the previous epoch's optimizer state is deleted. A crash at any point leaves a consistent run that
``--resume`` continues from the last committed epoch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from imagemachines.fileio import atomic_write
from imagemachines.models.checkpoint import FORMAT, RUN_FILE, inside, read_tensors
from imagemachines.models.registry import file_sha256


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Save *tensors* as safetensors atomically; returns the file's sha256."""
    from safetensors.torch import save_file

    plain = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(plain, str(tmp)))
    return file_sha256(path)


def optimizer_split(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer ``state_dict`` as (tensors for safetensors, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    values: dict[str, dict] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value
            else:
                values.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "values": values}


def optimizer_join(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """The inverse of :func:`optimizer_split`."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        idx, _, name = key.partition(".")
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta.get("values", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


class RunWriter:
    """Everything a run writes. With ``enabled=False`` (ranks other than 0) it writes nothing."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.dir = Path(run_dir)
        self.enabled = enabled

    def epoch_dir(self, epoch: int) -> Path:
        return self.dir / "epochs" / f"{epoch:02d}"

    def write_run(self, meta: dict) -> None:
        if self.enabled:
            write_json(self.dir / RUN_FILE, {"format": FORMAT, **meta})

    def save_epoch(self, epoch: int, model_state: dict, optim_state: dict, meta: dict) -> dict:
        """Write epoch *epoch*'s weights, optimizer state and snapshot ``run.json``; returns their file records."""
        if not self.enabled:
            return {}
        d = self.epoch_dir(epoch)
        model_sha = write_tensors(d / "model.safetensors", model_state)
        tensors, optim_meta = optimizer_split(optim_state)
        optim_sha = write_tensors(d / "optimizer.safetensors", tensors)
        rel = d.relative_to(self.dir).as_posix()
        weights = {"file": "model.safetensors", "sha256": model_sha}
        write_json(d / RUN_FILE, {"format": FORMAT, **meta, "epoch": epoch, "weights": weights})
        return {
            "model": {"file": f"{rel}/model.safetensors", "sha256": model_sha},
            "optimizer": {"file": f"{rel}/optimizer.safetensors", "sha256": optim_sha, **optim_meta},
        }

    def prune(self, last: int, keep: set[int], keep_all: bool) -> None:
        """Drop optimizer states before *last*; without *keep_all*, epoch folders outside *keep* too."""
        if not self.enabled:
            return
        for d in sorted((self.dir / "epochs").glob("[0-9][0-9]*")):
            if not d.name.isdigit() or int(d.name) >= last:
                continue
            if keep_all or int(d.name) in keep:
                (d / "optimizer.safetensors").unlink(missing_ok=True)
            else:
                shutil.rmtree(d)


def load_resume(run_dir: Path, resume: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """The model and optimizer state dicts that ``run.json``'s ``resume`` record names (checksums verified)."""
    from imagemachines.errors import BadCheckpoint

    out = []
    for key in ("model", "optimizer"):
        rec = resume[key]
        path = inside(run_dir, rec["file"])
        if not path.is_file() or file_sha256(path) != rec["sha256"]:
            raise BadCheckpoint(
                f"The resume state {path} is missing or does not match its checksum in {run_dir / RUN_FILE}. "
                "Restore it from a copy, or start a new run with another --out."
            )
        out.append(read_tensors(path))
    return out[0], optimizer_join(out[1], resume["optimizer"])
