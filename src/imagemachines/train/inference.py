"""Scoring image files with a trained run: softmax probabilities per class, unreadable files reported."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from imagemachines.errors import UserError
from imagemachines.models.loaded import LoadedModel
from imagemachines.train.data import ImageFiles, Sample, collate


@dataclass
class Scores:
    """``probs[i]`` belongs to ``paths[i]``; files that could not be read are in ``skipped``."""

    paths: list[Path]
    labels: list[int]
    probs: torch.Tensor
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def load_run(run_dir: Path, device: str = "auto") -> LoadedModel:
    """A run directory as a model; a model that is not a run (no class names) is refused."""
    from imagemachines.models import load_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a run directory. Give the --out folder of `imagemachines train`.")
    return load_model(str(run_dir), device=device)


def score(model: LoadedModel, samples: Sequence[Sample], *, batch_size: int = 32, workers: int | None = None,
          desc: str = "scoring") -> Scores:
    """Class probabilities for every readable sample, preprocessed as the run was validated."""
    from imagemachines.train.augment import eval_transform
    from imagemachines.train.config import default_workers

    if batch_size < 1:
        raise UserError("--batch-size must be at least 1.")
    ds = ImageFiles(samples, eval_transform(model.input_size, model.mean, model.std))
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=False, collate_fn=collate,
        num_workers=default_workers(model.device.type) if workers is None else workers,
    )
    probs, kept, skipped = [], [], []
    model.module.eval()
    with torch.no_grad(), tqdm(total=len(ds), desc=desc, unit="img", dynamic_ncols=True,
                               disable=len(ds) < 2) as bar:
        for batch in loader:
            skipped += [(samples[i].path, why) for i, why in batch.bad]
            bar.update(len(batch) + len(batch.bad))
            if len(batch):
                logits = model.module(batch.images.to(model.device))
                probs.append(logits.float().softmax(1).cpu())
                kept += batch.indices.tolist()
    k = len(model.class_names or [])
    return Scores(
        paths=[samples[i].path for i in kept], labels=[samples[i].label for i in kept],
        probs=torch.cat(probs) if probs else torch.zeros(0, k), skipped=skipped,
    )
