"""Training settings: the seed's defaults, validation of every value, and what ``--resume`` may change."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from imagemachines.errors import UserError, did_you_mean

OPTIMIZERS = ("sgd", "adamw")
BALANCE = ("weighted", "sampler", "none")
# Settings a resumed run may change; everything else must stay as the run started.
RESUMABLE = ("epochs", "device", "workers")


def default_workers(device_type: str = "cpu") -> int:
    """Data-loading processes. With a GPU: one per core but one, at most 8. On a CPU: none, since loader
    processes take cores from the training threads (measured slower on 2 cores, docs/train.md), and
    decoding an image costs a few percent of a CPU training step."""
    if device_type != "cuda":
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


@dataclass
class TrainConfig:
    """Everything ``imagemachines train`` takes. Defaults reproduce the 2018 seed (InceptionV3, 299 px)."""

    data_dir: str
    out: str = ""
    arch: str = "inception_v3"
    weights: str = "imagenet"
    freeze_through: str = "auto"
    head: str = "seed"
    image_size: int = 0  # 0: the architecture's own (299 for inception_v3, else 224)
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    augment: str = "seed"
    balance: str = "weighted"
    aux_weight: float = 0.0
    amp: bool = True
    seed: int = 0
    keep_epochs: bool = True
    device: str = "auto"
    workers: int = -1  # -1: default_workers(device)

    @classmethod
    def from_args(cls, data_dir: str | Path, **given) -> TrainConfig:
        """Defaults overridden by the *given* values that are not None; validated."""
        names = {f.name for f in fields(cls)}
        unknown = [k for k in given if k not in names]
        if unknown:
            raise TypeError(f"unknown training settings: {unknown}")
        cfg = cls(data_dir=str(data_dir), **{k: v for k, v in given.items() if v is not None})
        if not cfg.out:
            cfg.out = str(Path("runs") / f"{Path(cfg.data_dir).resolve().name}-{cfg.arch}")
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise a :class:`UserError` naming the first bad value and what to use instead."""
        from imagemachines.models.heads import HEADS
        from imagemachines.train.augment import AUGMENTS

        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS), ("balance", self.balance, BALANCE),
                                     ("head", self.head, HEADS), ("augment", self.augment, AUGMENTS)):
            if value not in allowed:
                raise UserError(f"Unknown --{name} {value!r}.{did_you_mean(value, allowed)} "
                                f"Use one of: {', '.join(allowed)}.")
        checks = (
            (self.epochs >= 1, "--epochs must be at least 1."),
            (self.batch_size >= 1, "--batch-size must be at least 1."),
            (self.lr > 0, "--lr must be positive (the seed used 0.0001)."),
            (self.image_size == 0 or 32 <= self.image_size <= 1024, "--image-size must be between 32 and 1024."),
            (self.aux_weight >= 0, "--aux-weight must be 0 (no auxiliary head) or positive (0.4 is usual)."),
            (self.workers >= -1, "--workers must be 0 (load in the training process) or more."),
            (0 <= self.momentum < 1 and self.weight_decay >= 0, "momentum must be in [0, 1), weight decay >= 0."),
        )
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def loader_workers(self, device_type: str) -> int:
        return default_workers(device_type) if self.workers < 0 else self.workers

    def as_dict(self) -> dict:
        return asdict(self)

    def resumed(self, given: dict) -> TrainConfig:
        """This saved configuration with the *given* command-line values; only :data:`RESUMABLE` may differ."""
        saved = self.as_dict()
        changed = {k: v for k, v in given.items() if v is not None and k in saved and saved[k] != v
                   and k not in ("data_dir", "out")}
        fixed = {k: v for k, v in changed.items() if k not in RESUMABLE}
        if fixed:
            listing = ", ".join(f"--{k.replace('_', '-')} {saved[k]} (not {v})" for k, v in fixed.items())
            raise UserError(
                f"This run was started with {listing}; a resumed run keeps its settings (only "
                f"{', '.join('--' + k for k in RESUMABLE)} may change). Drop those options, or start a new run "
                "with another --out."
            )
        cfg = TrainConfig(**{**saved, **changed})
        if given.get("data_dir"):
            cfg.data_dir = str(given["data_dir"])
        cfg.check()
        return cfg
