"""The examples page's accentuated paintings: the first N paintings also shown changed just enough that the unit
fires strongly (`examples --accentuate N`)."""

from __future__ import annotations

import pytest
from PIL import Image
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.index import build_index, open_index
from imagemachines.index.examples import write_examples
from imagemachines.vis import read_recipe


@pytest.fixture
def index(blobnet, collection, tmp_path):
    return open_index(build_index(blobnet, collection.root, tmp_path / "idx", k=4, progress=False))


def test_the_top_paintings_get_their_accentuated_versions(index, blobnet, collection, tmp_path):
    page = write_examples(index, blobnet, "features.2", 0, tmp_path / "ex", k=3, render=False, accentuate=2,
                          accent_steps=4, progress=False)
    html = page.read_text()
    files = tmp_path / "ex" / "files"
    for rank in (1, 2):
        accent = files / f"{rank:03d}-accent.png"
        with Image.open(index.image_file(index.examples("features.2", 0, k=3)[rank - 1].image_id)) as original:
            w, h = original.size
        side = blobnet.input_size
        assert Image.open(accent).size == (round(w * side / max(w, h)), round(h * side / max(w, h)))
        recipe = read_recipe(accent)
        assert recipe["unit"] == "features.2:0" and recipe["accentuation"]["strength"] == 1.0
        assert f"files/{rank:03d}-accent.png" in html
    assert not (files / "003-accent.png").exists() and html.count("-accent.png") == 2


def test_the_command_takes_accentuate_n_and_refuses_a_negative_count(index, tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["examples", str(index.path), "--layer", "features.2", "--channel", "0",
                              "--accentuate", "-1", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "--accentuate cannot be negative" in str(bad.exception)
