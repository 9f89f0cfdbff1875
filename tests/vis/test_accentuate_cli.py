"""`imagemachines accentuate` from the command line: files per target and strength with their recipes, the sheet,
JSON numbers, and clear errors for what it cannot do."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.errors import UserError
from imagemachines.vis import read_recipe, save_direction
from imagemachines.vis.accent_cli import parse_strengths

runner = CliRunner()
FAST = ["--weights", "none", "--size", "48", "--steps", "2", "--device", "cpu"]


def painting(path):
    yy, xx = np.mgrid[0:60, 0:80]
    Image.fromarray(np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)).save(path)
    return path


def test_each_target_and_strength_gets_a_png_with_its_recipe_and_one_sheet(tmp_path):
    image = painting(tmp_path / "My Painting.png")
    direction = save_direction(tmp_path / "halo.safetensors", torch.ones(32), "features.6")
    result = runner.invoke(app, ["accentuate", "mobilenet_v2", str(image), "--unit", "features.6:3", "--class", "7",
                                 "--direction", str(direction), "--strength", "0.5,2", *FAST, "--seed", "3",
                                 "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    names = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    stem = "mobilenet_v2-random-My-Painting"
    tag = "48px-2steps-seed3"
    assert names == sorted([f"{stem}-{slug}-accent-s{s}-{tag}.png" for slug in ("features-6_3", "logits_7",
                                                                                  "features-6_halo")
                            for s in ("0.5", "2")] + [f"{stem}-accent-{tag}-sheet.png"])
    assert len(doc["accentuations"]) == 6 and doc["sheet"].endswith("-sheet.png")
    recipe = read_recipe(tmp_path / "out" / f"{stem}-logits_7-accent-s2-{tag}.png")
    assert recipe["kind"] == "class" and recipe["accentuation"]["strength"] == 2.0 and recipe["seed"] == 3
    assert recipe["painting"]["name"] == "My Painting.png" and (recipe["width"], recipe["height"]) == (48, 36)
    entry = next(e for e in doc["accentuations"] if e["target"] == "features.6:halo" and e["strength"] == 0.5)
    assert set(entry) >= {"before", "after", "gain", "pixel_distance", "activation_distance", "file"}


def test_the_lines_say_before_after_and_distance(tmp_path):
    image = painting(tmp_path / "p.png")
    result = runner.invoke(app, ["accentuate", "mobilenet_v2", str(image), "-u", "features.6:3", *FAST,
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "features.6:3 strength 1:" in result.output and "→" in result.output and "at features.6" in result.output
    assert "sheet:" in result.output


def test_what_it_cannot_do_is_a_clear_error(tmp_path):
    image = painting(tmp_path / "p.png")
    cases = [
        ([str(image)], "Say what to accentuate"),
        ([str(image), "-u", "features.6:3", "--strength", "x"], "Cannot read --strength"),
        ([str(image), "-u", "features.6:3", "--strength", "-1"], "numbers ≥ 0"),
        ([str(tmp_path / "missing.jpg"), "-u", "features.6:3"], "No such image file"),
        ([str(image), "--direction", str(tmp_path / "none.safetensors")], "No such direction file"),
        ([str(image), "--class", "no-such-class"], "has no class"),
        ([str(image), "-u", "features.6:3", "--reg-layer", "nope"], "has no layer 'nope'"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["accentuate", "mobilenet_v2", *args, *FAST, "--out", str(tmp_path / "o")])
        assert result.exit_code != 0 and isinstance(result.exception, UserError), (args, result.output)
        assert message in str(result.exception), (message, str(result.exception))


def test_strengths_are_read_as_a_comma_list():
    assert parse_strengths("0.5, 1,2") == [0.5, 1.0, 2.0] and parse_strengths("0") == [0.0]
