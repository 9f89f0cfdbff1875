"""`imagemachines concepts` from the command line: the output folder (page, JSON, tensors, pictures) and errors."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.errors import UserError
from tests.concepts.conftest import H, W, colour_model

runner = CliRunner()


@pytest.fixture
def use_colournet(monkeypatch):
    from imagemachines import models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: colour_model())


def invoke(*args):
    return runner.invoke(app, ["concepts", *map(str, args)])


@pytest.fixture
def metadata(painted, tmp_path):
    csv = tmp_path / "labels.csv"
    lines = ["path,artist,title,year"] + [f"{p},Painter {i},Discs no. {i},{1800 + i}"
                                         for i, p in enumerate(sorted(painted.centres))]
    csv.write_text("\n".join(lines) + "\n")
    return csv


def test_the_output_folder_holds_page_numbers_tensors_and_pictures(use_colournet, painted, metadata, tmp_path):
    out = tmp_path / "out"
    result = invoke("colournet", painted.root, "--classes", "all", "--concepts", 2, "--metadata", metadata,
                    "--render-size", 32, "--render-steps", 3, "--crops-shown", 4, "--out", out,
                    "--cache", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert "red: 6 paintings" in result.output and "page:" in result.output
    doc = json.loads((out / "concepts.json").read_text())
    assert doc["layer"] == "features.2" and set(doc["classes"]) == {"red", "blue"}
    red = doc["classes"]["red"]
    assert red["images"] == painted.of("red") and red["n_crops"] == 6 * 16
    assert red["rule"].startswith("paintings in a folder")
    first = red["concepts"][0]
    assert set(first["importance"]) == {"sobol_total", "sobol_total_std", "ablation", "ablation_std"}
    assert first["render_value"] is not None and len(first["crops"]) == 4
    for crop in first["crops"]:
        x0, y0, x1, y1 = crop["box"]
        assert crop["path"] in painted.centres and 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
        assert crop["metadata"]["artist"].startswith("Painter ") and crop["coefficient"] > 0
    assert red["summary"]["drop_top"] > red["summary"]["drop_random"]
    assert set(red["faithfulness"]["deletion"]) == {"concepts", "random", "units"}
    assert doc["shared"][0]["class_a"] == "red" and doc["shared"][0]["concept_a"] == 1

    tensors = load_file(str(out / "concepts.safetensors"))
    assert tensors["red/W"].shape == (2, 3) and tensors["red/U"].shape == (96, 2)
    assert tensors["red/maps"].shape == (6, 8, 8, 2) and tensors["red/crop_box"].shape == (96, 4)
    assert tensors["red/crop_box"][first_row(tensors, painted, first["crops"][0])].tolist() == \
        first["crops"][0]["box"]

    html = (out / "concepts.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"#:]+)"', html)
    assert len(sources) > 20 and all((out / s).is_file() for s in sources), [s for s in sources
                                                                              if not (out / s).is_file()]
    assert 'id="class-red-1"' in html and "Discs no." in html
    crop_file = out / first["files"]["crops"][0]["file"]
    assert Image.open(crop_file).size[0] > 0
    assert "<script" not in html  # a static page


def first_row(tensors, painted, crop) -> int:
    """The row of *crop* among the class's crops (its painting's crops come in path order, boxes row by row)."""
    image = painted.of("red").index(crop["path"])
    rows = [i for i, img in enumerate(tensors["red/crop_image"].tolist()) if img == image]
    return next(r for r in rows if tensors["red/crop_box"][r].tolist() == crop["box"])


def test_a_second_run_reads_the_cache(use_colournet, painted, tmp_path):
    args = ["colournet", painted.root, "--class", "red", "--concepts", 1, "--no-render", "--cache", tmp_path / "c"]
    assert invoke(*args, "--out", tmp_path / "a").exit_code == 0
    again = invoke(*args, "--concepts", 2, "--out", tmp_path / "b")
    assert again.exit_code == 0, again.output
    assert "0 paintings went through the network" in again.output


@pytest.mark.parametrize(("args", "message"), [
    (["--class", "violet"], "has no class 'violet'"),
    (["--class", "red", "--layer", "pool"], "has no spatial map"),
    (["--class", "red", "--classes", "all"], "either --class or --classes"),
    (["--class", "red", "--crop", "1.5"], "--crop must be a fraction"),
    (["--class", "red", "--concepts", "0"], "--concepts must be at least 1"),
])
def test_bad_options_are_clear_errors(use_colournet, painted, tmp_path, args, message):
    result = invoke("colournet", painted.root, *args, "--no-render", "--cache", tmp_path / "c", "--out", tmp_path)
    assert isinstance(result.exception, UserError) and message in str(result.exception), result.output


def test_paintings_are_required_and_checked_before_the_model_loads(monkeypatch, tmp_path):
    from imagemachines import models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    result = invoke("colournet", tmp_path / "missing")
    assert isinstance(result.exception, UserError) and "does not exist" in str(result.exception)
    result = invoke("colournet")
    assert isinstance(result.exception, UserError) and "IMAGE_DIR, or --index" in str(result.exception)


def test_an_index_gives_the_paintings_and_their_metadata(use_colournet, painted, metadata, tmp_path):
    from imagemachines.index import build_index

    index = build_index(colour_model(), painted.root, tmp_path / "index", k=2, metadata=metadata, progress=False)
    result = invoke("colournet", "--index", index, "--class", "blue", "--concepts", 2, "--no-render", "--out",
                    tmp_path / "out", "--cache", tmp_path / "c")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "concepts.json").read_text())
    assert doc["image_root"] == str(painted.root) and list(doc["classes"]) == ["blue"]
    crop = doc["classes"]["blue"]["concepts"][0]["crops"][0]
    assert crop["path"].startswith("blue/") and crop["metadata"]["title"].startswith("Discs no.")
