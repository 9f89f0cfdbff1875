"""A trained run is a model everywhere: load_run_dir, layers, the render engine, the CLI; damage is refused."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.errors import BadCheckpoint
from imagemachines.models import load_model
from imagemachines.models.checkpoint import load_run_dir
from imagemachines.train.evaluate import evaluate_run
from imagemachines.train.runio import RunWriter


def test_run_dir_loads_with_its_classes_and_preprocessing(trained):
    _, run = trained
    meta = json.loads((run / "run.json").read_text())
    model = load_model(str(run))
    assert model.source == "run" and model.name == run.name
    assert model.class_names == ["landscape", "portrait", "stilllife"]
    assert model.input_size == 32 and model.mean == tuple(meta["mean"])
    assert model.weights_id.startswith("run:") and meta["weights"]["sha256"].startswith(model.weights_id[4:])
    assert not model.module.training and not any(p.requires_grad for p in model.module.parameters())
    logits = next(layer for layer in model.layers() if layer.name == "logits")
    assert logits.channels == 3


def test_loaded_weights_reproduce_the_training_validation_accuracy(trained, tmp_path):
    data, run = trained
    meta = json.loads((run / "run.json").read_text())
    best = meta["epochs"][meta["best_epoch"] - 1]
    result = evaluate_run(run, data, split="val", out=tmp_path / "eval", workers=0)
    assert result["accuracy"] == pytest.approx(best["val_acc"])


def test_every_epoch_folder_is_a_model(trained):
    _, run = trained
    first = load_run_dir(run / "epochs" / "01")
    last = load_run_dir(run / "epochs" / "03")
    assert first.name == f"{run.name}-epoch01"
    assert first.weights_id != last.weights_id
    x = torch.rand(2, 3, 32, 32)
    assert not torch.allclose(first.module(first.normalize(x)), last.module(last.normalize(x)))


def test_render_engine_and_cli_accept_a_run(trained):
    _, run = trained
    vis = pytest.importorskip("imagemachines.vis")
    model = load_model(str(run))
    [r] = vis.render(model, vis.Unit("logits", 1), size=32, steps=3)
    assert r.image.size == (32, 32) and r.recipe["model"] == run.name
    result = CliRunner().invoke(app, ["layers", str(run)])
    assert result.exit_code == 0, result.output
    assert "layer4" in result.output and "logits" in result.output


def _copy_run(run, dest):
    """run.json and the best weights only (enough to load)."""
    meta = json.loads((run / "run.json").read_text())
    (dest / "epochs" / f"{meta['best_epoch']:02d}").mkdir(parents=True)
    shutil.copy(run / "run.json", dest / "run.json")
    shutil.copy(run / meta["weights"]["file"], dest / meta["weights"]["file"])
    return dest, meta


def test_damaged_runs_are_refused_with_advice(trained, tmp_path):
    _, run = trained
    with pytest.raises(BadCheckpoint, match="has no run.json"):
        load_run_dir(tmp_path)
    copy, meta = _copy_run(run, tmp_path / "copy")
    weights = copy / meta["weights"]["file"]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BadCheckpoint, match="does not match the checksum"):
        load_run_dir(copy)
    (copy / "run.json").write_text(json.dumps({**meta, "weights": {"file": "../../etc/passwd"}}))
    with pytest.raises(BadCheckpoint, match="outside the run directory"):
        load_run_dir(copy)
    (copy / "run.json").write_text(json.dumps({**meta, "weights": None}))
    with pytest.raises(BadCheckpoint, match="--resume"):
        load_run_dir(copy)
    (copy / "run.json").write_text("{not json")
    with pytest.raises(BadCheckpoint, match="cannot be read"):
        load_run_dir(copy)


def test_weights_that_do_not_fit_are_refused(trained, tmp_path):
    _, run = trained
    copy, meta = _copy_run(run, tmp_path / "copy")
    (copy / "run.json").write_text(json.dumps({**meta, "class_names": ["a", "b"], "weights": {
        "file": meta["weights"]["file"]}}))
    with pytest.raises(BadCheckpoint, match="do not fit a resnet18"):
        load_run_dir(copy)


def test_writer_of_other_ranks_writes_nothing(tmp_path):
    writer = RunWriter(tmp_path / "run", enabled=False)
    writer.write_run({"name": "x"})
    assert writer.save_epoch(1, {"w": torch.ones(2)}, {"state": {}, "param_groups": []}, {}) == {}
    writer.prune(1, set(), keep_all=False)
    assert not (tmp_path / "run").exists()
