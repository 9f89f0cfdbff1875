"""What docs/train.md promises for a run directory: class names everywhere, by name; predict and evaluate keep
going and keep earlier results."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.errors import UnknownLayer, UserError
from imagemachines.models import load_model

runner = CliRunner()


def test_layers_of_a_run_lists_its_classes_in_index_order(trained):
    _, run = trained
    result = runner.invoke(app, ["layers", str(run)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "0 landscape, 1 portrait, 2 stilllife" in result.output  # alphabetical: 0 is not portrait


def test_visualize_a_run_by_class_name(trained, tmp_path):
    _, run = trained
    result = runner.invoke(app, ["visualize", str(run), "--class", "portrait", "--size", "32", "--steps", "2",
                                 "--device", "cpu", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    [sidecar] = tmp_path.glob("*.json")
    recipe = json.loads(sidecar.read_text())
    assert recipe["channel"] == 1 and recipe["class_name"] == "portrait"


def test_an_unknown_layer_of_a_run_names_the_run_path_to_list_layers(trained, tmp_path):
    _, run = trained
    link = tmp_path / "runs" / "plm"
    shutil.copytree(run, link)
    model = load_model(str(link), device="cpu")
    with pytest.raises(UnknownLayer, match=f"`imagemachines layers {link}` lists them"):
        model.layer("Mixed_9z")


def test_predict_reports_missing_paths_and_scores_folders(trained, tmp_path):
    data, run = trained
    folder = data / "test" / "landscape"
    result = runner.invoke(app, ["predict", str(run), str(tmp_path / "gone.jpg"), str(folder), "--json",
                                 "--device", "cpu"])
    assert result.exit_code == 1, result.output
    rows = json.loads(result.stdout)
    assert rows[-1] == {"path": str(tmp_path / "gone.jpg"), "predicted": None, "scores": None,
                        "error": "no such file or folder"}
    assert len(rows) == 1 + len(list(folder.glob("*.jpg"))) and rows[0]["predicted"] == "landscape"


def test_evaluating_another_folder_called_test_keeps_the_earlier_result(trained, tmp_path):
    from imagemachines.train.evaluate import evaluate_run

    data, run = trained
    run = shutil.copytree(run, tmp_path / "run")
    evaluate_run(run, data, device="cpu")  # picks data/test
    assert (run / f"eval-{data.name}-test" / "metrics.json").is_file()
    other = shutil.copytree(data / "test", tmp_path / "elsewhere" / "test")
    evaluate_run(run, other, device="cpu")  # a folder of class folders, itself called test
    assert (run / "eval-test" / "metrics.json").is_file()
    first = json.loads((run / f"eval-{data.name}-test" / "metrics.json").read_text())
    assert first["data"] == str(data / "test")
    with pytest.raises(UserError, match="holds the evaluation of"):
        evaluate_run(run, other, out=run / f"eval-{data.name}-test", device="cpu")
