"""`imagemachines index` and `imagemachines examples` from the command line (a registry model from a file)."""

from __future__ import annotations

import csv

import pytest
import torch
from typer.testing import CliRunner

from imagemachines.cli import app
from imagemachines.errors import UnknownLayer, UserError

from .conftest import make_collection

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from safetensors.torch import save_file
    from torchvision.models import mobilenet_v3_small

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "small.safetensors"
    save_file(mobilenet_v3_small().state_dict(), str(path))
    return path


def test_index_then_examples(weights, tmp_path):
    images = make_collection(tmp_path / "images", n_red=3, n_tint=2, n_grey=2).root
    result = runner.invoke(app, ["index", "mobilenet_v3_small", str(images), "--weights", str(weights),
                                 "--layers", "features.1,features.3", "--k", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "index" / "images-mobilenet_v3_small"  # the default: beside the image folder
    assert result.output.strip().splitlines()[-1] == str(out)
    ex = runner.invoke(app, ["examples", str(out), "--layer", "features.3", "--channel", "5", "--k", "3",
                             "--no-render", "--device", "cpu"])
    assert ex.exit_code == 0, ex.output
    page = out / "examples" / "features-3_5" / "examples.html"
    assert ex.output.strip().splitlines()[-1] == str(page)
    rows = list(csv.DictReader((page.parent / "examples.csv").read_text().splitlines()))
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert (page.parent / "files" / "001-heat.jpg").is_file()  # the model was loaded again from the manifest
    neg = runner.invoke(app, ["examples", str(out), "--layer", "features.3", "--channel", "5", "--negative",
                              "--no-render", "--no-heat"])
    assert neg.exit_code == 0, neg.output
    assert (out / "examples" / "features-3_5-negative" / "examples.csv").is_file()


def test_cli_errors(weights, tmp_path):
    missing = runner.invoke(app, ["index", "mobilenet_v3_small", str(tmp_path / "nope")])
    assert isinstance(missing.exception, UserError) and "does not exist" in str(missing.exception)
    images = make_collection(tmp_path / "images", n_red=1, n_tint=1, n_grey=1).root
    unknown = runner.invoke(app, ["index", "mobilenet_v3_small", str(images), "--weights", str(weights),
                                  "--layers", "features.99", "--device", "cpu"])
    assert isinstance(unknown.exception, UnknownLayer)
    ok = runner.invoke(app, ["index", "mobilenet_v3_small", str(images), "--weights", str(weights),
                             "--layers", "features.1", "--out", str(tmp_path / "idx"), "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    no_unit = runner.invoke(app, ["examples", str(tmp_path / "idx")])
    assert isinstance(no_unit.exception, UserError) and "--layer L --channel C" in str(no_unit.exception)
    no_logits = runner.invoke(app, ["examples", str(tmp_path / "idx"), "--class", "3"])
    assert isinstance(no_logits.exception, UserError) and "no 'logits' layer" in str(no_logits.exception)
    not_index = runner.invoke(app, ["examples", str(images), "--layer", "features.1", "--channel", "0"])
    assert isinstance(not_index.exception, UserError) and "holds no index" in str(not_index.exception)
    bad_ranking = runner.invoke(app, ["index", "not-a-model", str(images), "--ranking", "edges"])
    assert isinstance(bad_ranking.exception, UserError) and "Unknown ranking 'edges'" in str(bad_ranking.exception)


def test_the_ranking_is_chosen_on_the_command_line_and_recorded(weights, tmp_path):
    import json

    images = make_collection(tmp_path / "images", n_red=2, n_tint=1, n_grey=1).root
    for ranking, expected in ((None, "interior"), ("reflect", "reflect")):
        out = tmp_path / f"idx-{ranking}"
        extra = ["--ranking", ranking] if ranking else []
        result = runner.invoke(app, ["index", "mobilenet_v3_small", str(images), "--weights", str(weights),
                                     "--layers", "features.1", "--out", str(out), "--device", "cpu", *extra])
        assert result.exit_code == 0, result.output
        assert json.loads((out / "index.json").read_text())["ranking"] == expected
