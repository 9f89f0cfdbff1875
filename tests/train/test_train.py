"""Training end to end (resnet18 from scratch on tiny synthetic images): accuracy, files, resume, bad input."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from imagemachines.errors import UserError
from imagemachines.train.trainer import prepare

from .conftest import make_dataset, train_run


def test_from_scratch_reaches_90_percent_and_writes_the_run(trained):
    data, run = trained
    meta = json.loads((run / "run.json").read_text())
    best = meta["epochs"][meta["best_epoch"] - 1]
    assert best["val_acc"] >= 0.9
    assert meta["status"] == "finished" and meta["last_epoch"] == 3 and len(meta["epochs"]) == 3
    assert meta["class_names"] == ["landscape", "portrait", "stilllife"]
    assert meta["arch"] == "resnet18" and meta["head"] == "seed" and meta["input_size"] == 32
    assert meta["config"]["optimizer"] == "adamw" and meta["config"]["epochs"] == 3
    assert len(meta["data"]["fingerprint"]) == 64 and meta["data"]["train_images"] == 48
    assert meta["weights"]["file"] == f"epochs/{meta['best_epoch']:02d}/model.safetensors"
    for epoch in (1, 2, 3):  # every epoch kept, each a loadable run directory of its own
        assert (run / "epochs" / f"{epoch:02d}" / "model.safetensors").is_file()
        assert json.loads((run / "epochs" / f"{epoch:02d}" / "run.json").read_text())["epoch"] == epoch
    # only the last epoch keeps the optimizer state that --resume needs
    assert [p.parent.name for p in sorted(run.glob("epochs/*/optimizer.safetensors"))] == ["03"]
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert json.loads((run / "metrics.json").read_text())[2]["val_acc"] == meta["epochs"][2]["val_acc"]
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(run.rglob("*.tmp"))


def _weights(run) -> dict[str, torch.Tensor]:
    meta = json.loads((run / "run.json").read_text())
    return load_file(str(run / meta["resume"]["model"]["file"]))


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 8, "val": 4})
    straight = train_run(data, tmp_path / "straight", epochs=2, batch_size=8)

    def crash(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(data, tmp_path / "resumed", on_epoch_end=crash, epochs=2, batch_size=8)
    assert json.loads((tmp_path / "resumed" / "run.json").read_text())["last_epoch"] == 1
    seen = []
    resumed = train_run(data, tmp_path / "resumed", resume=True, epochs=2, batch_size=8,
                        on_epoch_end=lambda r: seen.append(r["epoch"]))
    assert seen == [2]  # it continued after epoch 1 rather than starting over
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra = json.loads((straight / "run.json").read_text())["epochs"]
    rb = json.loads((resumed / "run.json").read_text())["epochs"]
    assert [(r["train_loss"], r["val_loss"]) for r in ra] == [(r["train_loss"], r["val_loss"]) for r in rb]


def test_resume_can_add_epochs_but_not_change_settings(tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 4, "val": 2}, size=32)
    run = train_run(data, tmp_path / "run", epochs=1, batch_size=12)
    with pytest.raises(UserError, match=r"--lr 0.001 \(not 0.01\)"):
        prepare(data, {"out": str(run), "lr": 0.01}, resume=True)
    cfg, previous = prepare(data, {"out": str(run), "epochs": 2}, resume=True)
    assert cfg.epochs == 2 and cfg.lr == 1e-3 and previous["last_epoch"] == 1
    train_run(data, run, resume=True, epochs=2, batch_size=12)
    assert json.loads((run / "run.json").read_text())["last_epoch"] == 2


def test_resume_refuses_changed_data(tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 4, "val": 2}, size=32)
    run = train_run(data, tmp_path / "run", epochs=1, batch_size=12)
    make_dataset(data, {"train": 5}, size=32, seed=9)  # one more image per class
    with pytest.raises(UserError, match="changed since the run started"):
        train_run(data, run, resume=True, epochs=2, batch_size=12)


def test_existing_runs_and_folders_are_never_overwritten(tmp_path):
    data = make_dataset(tmp_path / "data", {"train": 2, "val": 1}, size=16)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    with pytest.raises(UserError, match="--resume"):
        prepare(data, {"out": str(tmp_path / "run")})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        prepare(data, {"out": str(tmp_path / "other")})
    with pytest.raises(UserError, match="no run to resume"):
        prepare(data, {"out": str(tmp_path / "nothing")}, resume=True)


@pytest.mark.parametrize("settings, message", [
    ({"optimizer": "adam"}, "Did you mean: adamw"), ({"epochs": 0}, "--epochs"), ({"lr": -1.0}, "--lr"),
    ({"augment": "heavy"}, "seed, light, none"), ({"balance": "oversample"}, "weighted, sampler, none"),
])
def test_bad_settings_are_explained(tmp_path, settings, message):
    with pytest.raises(UserError, match=message):
        prepare(tmp_path, {"out": str(tmp_path / "run"), **settings})


def test_corrupt_images_are_skipped_and_reported(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", {"train": 4, "val": 2}, size=32)
    good = next((data / "train" / "portrait").iterdir()).read_bytes()
    (data / "train" / "portrait" / "broken.jpg").write_bytes(good[: len(good) // 3])
    (data / "val" / "landscape" / "empty.png").write_bytes(b"")
    run = train_run(data, tmp_path / "run", epochs=1, batch_size=12, augment="none")
    skipped = json.loads((run / "skipped.json").read_text())
    assert sorted(p["path"].rsplit("/", 1)[1] for p in skipped) == ["broken.jpg", "empty.png"]
    record = json.loads((run / "run.json").read_text())["epochs"][0]
    assert record["train_images"] == 12 and record["val_images"] == 6 and record["skipped"] == 2
    assert "Skipped 2 unreadable image(s)" in capsys.readouterr().err


def test_only_rank_0_checks_the_output_folder(tmp_path, monkeypatch):
    """Under torchrun rank 0 may already have written run.json when rank 1 looks: rank 1 must not object."""
    data = make_dataset(tmp_path / "data", {"train": 2, "val": 1}, size=16)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg, previous = prepare(data, {"out": str(tmp_path / "run")})
    assert cfg.out == str(tmp_path / "run") and previous is None
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError, match="--resume"):
        prepare(data, {"out": str(tmp_path / "run")})
