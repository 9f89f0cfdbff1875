"""``imagemachines train``: fine-tune a torchvision network on an image folder, checkpointing every epoch.

>>> cfg = prepare("data/portrait-landscape", {"arch": "mobilenet_v2", "epochs": 3})
>>> run_dir = fit(cfg)
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
from rich.console import Console

from imagemachines import csvfiles
from imagemachines.errors import BadCheckpoint, UserError
from imagemachines.models.checkpoint import RUN_FILE, read_run_json
from imagemachines.train import distributed as D
from imagemachines.train.config import TrainConfig
from imagemachines.train.data import ImageFiles, class_counts, collate, fingerprint, train_val
from imagemachines.train.runio import RunWriter, load_resume, write_json, write_text

console = Console(stderr=True, highlight=False)


def prepare(data_dir: str | Path, given: dict, resume: bool = False) -> tuple[TrainConfig, dict | None]:
    """The configuration to train with and, for ``--resume``, the run's saved description.

    A new run refuses an output folder that already holds anything (nothing is ever overwritten); a resumed
    run takes its saved settings, of which only epochs, device and workers may change.
    """
    cfg = TrainConfig.from_args(data_dir, **given)
    run_dir = Path(cfg.out)
    if resume:
        if not (run_dir / RUN_FILE).is_file():
            raise UserError(f"There is no run to resume in {run_dir}. Give its folder with --out, or drop "
                            "--resume to start a new run.")
        meta = read_run_json(run_dir)
        try:
            saved = TrainConfig(**meta["config"])
        except (KeyError, TypeError) as exc:
            raise BadCheckpoint(f"{run_dir / RUN_FILE} has no usable training settings ({exc}).") from exc
        cfg = saved.resumed({**given, "data_dir": str(data_dir)})
        cfg.out = str(run_dir)
        return cfg, meta
    if not D.from_env().main:
        return cfg, None  # under torchrun rank 0 checks the folder (and may already have started writing it)
    if (run_dir / RUN_FILE).is_file():
        raise UserError(f"{run_dir} already holds a training run. Continue it with --resume, or choose another "
                        "--out for a new run.")
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UserError(f"{run_dir} exists and is not empty; choose another --out (nothing is overwritten).")
    return cfg, None


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 101 + rank) % (2**63)


def fit(cfg: TrainConfig, previous: dict | None = None,
        on_epoch_end: Callable[[dict], None] | None = None) -> Path:
    """Train as *cfg* says (continuing *previous* when resuming); returns the run directory."""
    from imagemachines.models import resolve_device

    dist = D.from_env()
    device = D.setup(dist, resolve_device(cfg.device))
    try:
        return _Trainer(cfg, previous, dist, device).run(on_epoch_end)
    except KeyboardInterrupt:
        if dist.main:
            console.print(f"Interrupted. Finished epochs are saved; continue with `imagemachines train "
                          f"{cfg.data_dir} --out {cfg.out} --resume`.")
        raise
    finally:
        D.teardown(dist)


class _Trainer:
    def __init__(self, cfg: TrainConfig, previous: dict | None, dist: D.Dist, device: torch.device):
        from imagemachines.models.heads import (
            build_classifier,
            freeze_through,
            frozen_modules,
            rebuild_classifier,
            resolve_freeze,
        )

        self.cfg, self.previous, self.dist, self.device = cfg, previous, dist, device
        self.data_dir, self.run_dir = Path(cfg.data_dir), Path(cfg.out)
        self.classes, self.train_samples, self.val_samples = train_val(self.data_dir)
        self.fingerprint = fingerprint(self.train_samples + self.val_samples, self.data_dir)
        resume = (previous or {}).get("resume")
        if previous:
            self._check_same_data(previous)
        aux = cfg.aux_weight > 0
        torch.manual_seed(cfg.seed)
        if resume:
            module = rebuild_classifier(cfg.arch, len(self.classes), cfg.head, aux)
            self.model_state, self.optim_state = load_resume(self.run_dir, resume)
            module.load_state_dict(self.model_state)
            size, mean, std = previous["input_size"], previous["mean"], previous["std"]
            base_weights, head = previous["base_weights"], previous["head_module"]
        else:
            bb = build_classifier(cfg.arch, len(self.classes), cfg.head, aux, cfg.weights)
            module, mean, std, base_weights, head = bb.module, bb.mean, bb.std, bb.weights_id, bb.head
            size = cfg.image_size or bb.input_size
        if aux and cfg.arch == "inception_v3" and int(size) < 299:
            raise UserError("InceptionV3's auxiliary head needs 299 px images: use --image-size 299, or "
                            "--aux-weight 0 to train without it (as the seed did).")
        self.start = int(resume["epoch"]) if resume else 0
        self.resume = resume
        self.size, self.mean, self.std = int(size), tuple(mean), tuple(std)
        layer = resolve_freeze(cfg.arch, cfg.freeze_through, cfg.weights)
        self.frozen_names = freeze_through(module, layer, self.size, head)
        self.frozen = frozen_modules(module, self.frozen_names)
        self.module = module.to(device)
        if device.type == "cuda":
            self.module = self.module.to(memory_format=torch.channels_last)
        self.writer = RunWriter(self.run_dir, enabled=dist.main)
        self.records: list[dict] = list((previous or {}).get("epochs", [])) if resume else []
        self.best_epoch = int((previous or {}).get("best_epoch") or 0) if resume else 0
        self.best_weights = (previous or {}).get("weights") if resume else None
        self.skipped: dict[str, str] = dict((previous or {}).get("skipped", {})) if resume else {}
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        self.meta = {
            "name": self.run_dir.resolve().name,
            "arch": cfg.arch, "class_names": self.classes, "num_classes": len(self.classes),
            "head": cfg.head, "head_module": head, "aux_logits": aux,
            "input_size": self.size, "mean": list(self.mean), "std": list(self.std), "resize": "squash",
            "freeze_through": layer, "frozen": self.frozen_names,
            "parameters": sum(p.numel() for p in module.parameters()), "trainable_parameters": trainable,
            "base_weights": base_weights,
            "config": cfg.as_dict(),
            "data": self._data_record(),
            "world_size": dist.world,
            "software": _software(),
            "created": (previous or {}).get("created") or _now(),
        }

    # -- setup ----------------------------------------------------------------------------------------------
    def _check_same_data(self, previous: dict) -> None:
        if previous.get("class_names") != self.classes:
            raise UserError(f"The classes in {self.data_dir / 'train'} ({', '.join(self.classes)}) differ from "
                            f"the run's ({', '.join(previous.get('class_names', []))}); resume needs the same data.")
        old = previous.get("data", {}).get("fingerprint")
        if old != self.fingerprint:
            raise UserError(f"The images in {self.data_dir} changed since the run started (data fingerprint "
                            f"{str(old)[:12]} → {self.fingerprint[:12]}). Resume needs the same data; start a new "
                            "run with another --out.")

    def _data_record(self) -> dict:
        k = len(self.classes)
        counts = {split: dict(zip(self.classes, class_counts(s, k), strict=True))
                  for split, s in (("train", self.train_samples), ("val", self.val_samples))}
        return {"dir": str(self.data_dir.resolve()), "fingerprint": self.fingerprint,
                "fingerprint_of": "relative path, size and class of every train/ and val/ image",
                "train_images": len(self.train_samples), "val_images": len(self.val_samples),
                "class_counts": counts}

    def _optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.module.parameters() if p.requires_grad]
        if self.cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.cfg.lr, momentum=self.cfg.momentum,
                                   weight_decay=self.cfg.weight_decay)
        return torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def _loaders(self):
        from imagemachines.train.augment import eval_transform, train_transform
        from imagemachines.train.sampler import EpochSampler, balanced_weights

        cfg, dist = self.cfg, self.dist
        train_ds = ImageFiles(self.train_samples, train_transform(self.size, cfg.augment, self.mean, self.std),
                              seed=cfg.seed)
        val_ds = ImageFiles(self.val_samples[dist.rank::dist.world], eval_transform(self.size, self.mean, self.std))
        weights = (balanced_weights([s.label for s in self.train_samples], len(self.classes))
                   if cfg.balance == "sampler" else None)
        sampler = EpochSampler(len(train_ds), seed=cfg.seed, rank=dist.rank, world=dist.world, weights=weights)
        per_rank = math.ceil(cfg.batch_size / dist.world)
        common = {"num_workers": cfg.loader_workers(self.device.type), "collate_fn": collate,
                  "pin_memory": self.device.type == "cuda"}

        def train_loader(epoch: int):
            sampler.set_epoch(epoch)
            train_ds.epoch = epoch
            g = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, dist.rank))
            return torch.utils.data.DataLoader(train_ds, batch_size=per_rank, sampler=sampler, generator=g,
                                               **common)

        val_loader = torch.utils.data.DataLoader(val_ds, batch_size=per_rank, shuffle=False, **common)
        return train_loader, val_loader

    def _loss(self) -> torch.nn.Module:
        from imagemachines.train.sampler import class_weights

        weight = None
        if self.cfg.balance == "weighted":
            weight = class_weights(class_counts(self.train_samples, len(self.classes))).to(self.device)
        return torch.nn.CrossEntropyLoss(weight=weight)

    # -- training -------------------------------------------------------------------------------------------
    def run(self, on_epoch_end: Callable[[dict], None] | None) -> Path:
        from imagemachines.models.heads import train_mode
        from imagemachines.train.loop import Amp, train_epoch, validate

        cfg, dist = self.cfg, self.dist
        if self.start >= cfg.epochs:
            if dist.main:
                console.print(f"{self.run_dir} already finished all {self.start} epochs; pass a larger --epochs "
                              "to train further.")
            return self.run_dir
        model = self.module
        if dist.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        optimizer = self._optimizer()
        amp = Amp(self.device, cfg.amp)
        if self.previous and self.previous.get("resume"):
            optimizer.load_state_dict(self.optim_state)
            if self.previous["resume"].get("scaler"):
                amp.scaler.load_state_dict(self.previous["resume"]["scaler"])
        train_loader, val_loader = self._loaders()
        loss_fn = self._loss()
        if not self.previous:
            self.writer.write_run({**self.meta, "status": "running", "last_epoch": 0, "epochs": []})
        if dist.main:
            self._announce()
        for epoch in range(self.start + 1, cfg.epochs + 1):
            torch.manual_seed(epoch_seed(cfg.seed, epoch, dist.rank))
            desc = f"epoch {epoch}/{cfg.epochs}"
            tr = train_epoch(model, train_loader(epoch), optimizer, loss_fn, amp=amp, aux_weight=cfg.aux_weight,
                             set_mode=lambda: train_mode(self.module, self.frozen), dist=dist, device=self.device,
                             desc=desc)
            D.sync_buffers(self.module, dist)
            val_loss, confusion, val_bad = validate(self.module, val_loader, len(self.classes), amp=amp, dist=dist,
                                                    device=self.device, desc=f"{desc} validation")
            self._note_skipped(tr.bad, val_bad, val_loader.dataset)
            n_val = int(confusion.sum())
            record = {
                "epoch": epoch, "train_loss": tr.loss, "train_acc": tr.accuracy,
                "val_loss": val_loss, "val_acc": float(confusion.diag().sum()) / max(n_val, 1),
                "lr": optimizer.param_groups[0]["lr"], "seconds": round(tr.seconds, 3),
                "images_per_s": round(tr.rate, 2), "train_images": tr.images, "val_images": n_val,
                "skipped": len(self.skipped),
            }
            self.records.append(record)
            self._commit(epoch, optimizer, amp, record)
            if dist.main:
                console.print(f"epoch {epoch}/{cfg.epochs}: train loss {tr.loss:.4f} acc {tr.accuracy:.3f} · "
                              f"val loss {val_loss:.4f} acc {record['val_acc']:.3f} · {tr.rate:.1f} img/s")
            if on_epoch_end:
                on_epoch_end(record)
        self.writer.write_run(self._run_meta(cfg.epochs, amp, status="finished"))
        D.barrier(dist)
        if dist.main:
            best = self.records[self.best_epoch - 1] if self.best_epoch else {}
            console.print(f"Done: best epoch {self.best_epoch} (val acc {best.get('val_acc', 0):.3f}). Run saved in "
                          f"{self.run_dir}.\nNext: `imagemachines evaluate {self.run_dir} {self.data_dir}`, "
                          f"`imagemachines layers {self.run_dir}`.")
        return self.run_dir

    def _announce(self) -> None:
        m = self.meta
        frozen = f"frozen through {m['freeze_through']}" if self.frozen_names else "nothing frozen"
        console.print(
            f"Training {m['arch']} ({m['head']} head, {frozen}; {m['trainable_parameters']:,} of "
            f"{m['parameters']:,} parameters trained) on {len(self.train_samples)} images of {len(self.classes)} "
            f"classes at {self.size} px, {self.device}"
            + (f", {self.dist.world} processes" if self.dist.active else "")
            + (f"; resuming after epoch {self.start}" if self.start else "") + "."
        )

    def _note_skipped(self, train_bad, val_bad, val_ds) -> None:
        found = [(str(self.train_samples[i].path), why) for i, why in train_bad]
        found += [(str(val_ds.samples[i].path), why) for i, why in val_bad]
        new = {}
        for part in D.gather(found, self.dist):
            for path, why in part:
                if path not in self.skipped:
                    new[path] = why
        self.skipped.update(new)
        if new and self.dist.main:
            console.print(f"[yellow]Skipped {len(new)} unreadable image(s)[/]: "
                          + ", ".join(Path(p).name for p in list(new)[:5]) + (" …" if len(new) > 5 else "")
                          + f" (all listed in {self.run_dir / 'skipped.json'}).")

    def _run_meta(self, epoch: int, amp, status: str) -> dict:
        return {**self.meta, "status": status, "last_epoch": epoch, "best_epoch": self.best_epoch,
                "weights": self.best_weights, "epochs": self.records, "skipped": self.skipped,
                "updated": _now(), "resume": self.resume}

    def _commit(self, epoch: int, optimizer, amp, record: dict) -> None:
        best = self.records[self.best_epoch - 1] if self.best_epoch else None
        improved = best is None or (record["val_acc"], -record["val_loss"]) > (best["val_acc"], -best["val_loss"])
        if improved:
            self.best_epoch = epoch
        if not self.dist.main:
            return
        files = self.writer.save_epoch(epoch, self.module.state_dict(), optimizer.state_dict(),
                                       {**self.meta, "epochs": self.records})
        if improved:
            self.best_weights = files["model"]
        self.resume = {"epoch": epoch, **files, "scaler": amp.scaler.state_dict()}
        self.writer.write_run(self._run_meta(epoch, amp, status="running"))
        self.writer.prune(epoch, keep={self.best_epoch}, keep_all=self.cfg.keep_epochs)
        self._write_metrics()

    def _write_metrics(self) -> None:
        from imagemachines.train.plots import curves

        buf = io.StringIO()
        w = csvfiles.dict_writer(buf, fieldnames=list(self.records[0]))
        w.writeheader()
        w.writerows(self.records)
        write_text(self.run_dir / "metrics.csv", buf.getvalue())
        write_json(self.run_dir / "metrics.json", self.records)
        write_json(self.run_dir / "skipped.json", [{"path": p, "error": e} for p, e in self.skipped.items()])
        curves(self.records, self.run_dir / "curves.png", title=f"{self.meta['name']} ({self.meta['arch']})")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _software() -> dict:
    import torchvision

    import imagemachines

    return {"imagemachines": imagemachines.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__}
