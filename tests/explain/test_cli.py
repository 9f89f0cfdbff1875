"""`imagemachines explain` from the command line: outputs, --json, and every bad input as a clear error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.errors import UserError
from imagemachines.models import LoadedModel
from tests.explain.planted import RED, painting, planted_model

runner = CliRunner()


@pytest.fixture
def use_planted(monkeypatch):
    """`load_model` (whatever name) gives the planted net; returns a setter to swap in another model."""
    from imagemachines import models

    current = {"model": planted_model()}
    monkeypatch.setattr(models, "load_model", lambda *a, **k: current["model"])
    return current


@pytest.fixture
def red_file(tmp_path):
    path = tmp_path / "query.png"
    painting([((20, 40), RED)], size=(80, 64)).save(path)
    return path


def invoke(*args):
    return runner.invoke(app, ["explain", *map(str, args)])


def test_json_lookup_with_index(use_planted, red_file, index, collection, tmp_path):
    root, groups = collection
    result = invoke("planted", red_file, "--index", index.path, "--k", 3, "--similar", 4, "--renders", 1,
                    "--render-steps", 2, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout[result.stdout.index("{"):])
    assert doc["lookup"]["units"][0]["channel"] == 0 and len(doc["similar"]) == 4
    assert (tmp_path / "out" / "explain.html").is_file() and doc["out"] == str(tmp_path / "out")
    # a painting of the collection is recognised and left out of its own similar paintings
    own = root / groups["red"][3]
    result = invoke("planted", own, "--index", index.path, "--renders", 0, "--out", tmp_path / "own", "--json")
    doc = json.loads(result.stdout[result.stdout.index("{"):])
    assert doc["in_collection"] is not None
    assert doc["in_collection"] not in [s["image_id"] for s in doc["similar"]]


def test_unit_and_class(use_planted, red_file, tmp_path):
    result = invoke("planted", red_file, "--unit", "features.2:0", "--class", "red", "--method", "gradcam++",
                    "--out", tmp_path)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "explain.json").read_text())
    assert doc["units"][0]["layer"] == "features.2" and list(doc["classes"][0]["maps"]) == ["gradcam++"]
    assert (tmp_path / doc["classes"][0]["maps"]["gradcam++"]).is_file()
    assert "page:" in result.output and "class 0 red" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--unit", "features.9:0"], "no layer 'features.9'"),
    (["--unit", "features.2:99"], "out of range"),
    (["--unit", "features.2"], "LAYER:CHANNEL"),
    (["--class", "green"], "no class 'green'"),
    (["--class", "5"], "out of range"),
    (["--class", "red", "--method", "lime"], "Unknown attribution method"),
    (["--class", "red", "--baseline", "white"], "black or blur"),
    (["--class", "red", "--cam-layer", "pool"], "no spatial map"),
    (["--layer", "features.7"], "no layer 'features.7'"),
    (["--k", "0"], "--k"),
])
def test_bad_options_are_clear(use_planted, red_file, tmp_path, args, message):
    result = invoke("planted", red_file, *args, "--renders", 0, "--out", tmp_path / "out")
    assert isinstance(result.exception, UserError) and message in str(result.exception), result.output
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_class_on_a_model_without_classes(use_planted, red_file, tmp_path):
    use_planted["model"] = LoadedModel.wrap("headless", planted_model().module.features, mean=(0.5,) * 3,
                                            std=(0.5,) * 3, input_size=64, weights_id="h", source="test")
    result = invoke("headless", red_file, "--class", "0", "--out", tmp_path)
    assert isinstance(result.exception, UserError) and "no class scores" in str(result.exception)


def test_index_of_another_model(use_planted, red_file, index, tmp_path):
    use_planted["model"] = planted_model(seed=3)
    result = invoke("planted", red_file, "--index", index.path, "--out", tmp_path / "out")
    assert isinstance(result.exception, UserError) and "planted-seed3" in str(result.exception)
    assert not (tmp_path / "out").exists()
    result = invoke("planted", red_file, "--index", tmp_path, "--out", tmp_path / "o")
    assert isinstance(result.exception, UserError)


@pytest.mark.parametrize(("kind", "message"), [("missing", "No such image file"), ("corrupt", "Cannot read"),
                                             ("text", "Cannot read"), ("folder", "No such image file")])
def test_bad_image_files_are_clear(use_planted, tmp_path, kind, message):
    path = tmp_path / "painting.jpg"
    if kind == "corrupt":
        path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)  # a JPEG header and nothing after it
    elif kind == "text":
        path.write_text("not an image")
    elif kind == "folder":
        path.mkdir()
    result = invoke("planted", path, "--out", tmp_path / "out")
    assert isinstance(result.exception, UserError) and message in str(result.exception)
    assert not (tmp_path / "out").exists()  # nothing written for a bad input


def test_errors_exit_2_with_a_message(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "imagemachines", "explain", "mobilenet_v2", str(tmp_path / "x.jpg")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "No such image file" in proc.stderr


def test_class_and_unit_with_an_index_also_show_the_similar_paintings_and_their_layer(use_planted, red_file, index,
                                                                                        tmp_path):
    """--index is never dropped: with --class or --unit the page and the JSON have the similar paintings too,
    found in the layer the reverse lookup takes by default, and both say which."""
    for args in (["--class", "red", "--method", "gradcam"], ["--unit", "features.2:0"]):
        out = tmp_path / args[0].strip("-")
        result = invoke("planted", red_file, *args, "--index", index.path, "--similar", 3, "--out", out)
        assert result.exit_code == 0, result.output
        doc = json.loads((out / "explain.json").read_text())
        assert doc["lookup"] is None and doc["similar_basis"] == "content at features.2" and len(doc["similar"]) == 3
        assert all((out / s["thumb"]).is_file() for s in doc["similar"])
        assert "similar paintings by content at features.2:" in result.output
        assert "Similar by <b>content at features.2</b>" in (out / "explain.html").read_text()
