"""Reverse lookup against a collection index: percentiles, the two rankings, similar paintings, the page."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from imagemachines.errors import UserError
from imagemachines.explain import explain_image
from imagemachines.explain.page import Options, find_in_index, write_explanation
from tests.explain.planted import RED, painting, planted_model

FAINT_BLUE = (60, 60, 150)


def test_raw_and_percentile_rankings_differ_as_they_should(planted, index):
    """Red is common in the collection and blue absent: a painting with red and a faint blue disc drives the red
    detector hardest, but the blue detector is what is unusual about it."""
    img = painting([((20, 20), RED), ((44, 44), FAINT_BLUE)])
    e = explain_image(planted, img, index=index, k=3)
    assert e.layer == "features.2"
    assert e.units[0].channel == 0 and e.by_percentile[0].channel == 1
    assert e.by_percentile[0].percentile == 100.0
    assert e.units[0].value > e.by_percentile[0].value
    # the red disc here is weaker than the collection's strong ones: its percentile is below 100, and it is the
    # share of indexed paintings whose red maximum is at most this one's (8 red, 6 grey)
    red = e.units[0]
    assert red.percentile is not None and 0 < red.percentile < 100
    maxima = [ex.value for ex in index.examples("features.2", 0, k=index.n_images)]
    share = 100 * sum(v <= red.value for v in maxima) / index.n_images
    assert red.percentile == pytest.approx(share, abs=100 / index.n_images)


def test_similar_paintings_are_the_red_ones(planted, index, collection):
    root, groups = collection
    e = explain_image(planted, painting([((30, 30), RED)], seed=7), index=index, similar=5)
    paths = [index.image(i).path for i, _ in e.similar]
    assert len(paths) == 5 and all(p.startswith("red/") for p in paths)
    scores = [s for _, s in e.similar]
    assert scores == sorted(scores, reverse=True)
    # a painting of the collection is found as the same painting (not listed as similar), and when excluded, it
    # is gone
    own = Image.open(root / groups["grey"][2]).convert("RGB")
    own_id = next(i.id for i in index.images() if i.path == groups["grey"][2])
    found = explain_image(planted, own, index=index, similar=3)
    assert own_id in found.same_painting and own_id not in [i for i, _ in found.similar]
    assert own_id not in [i for i, _ in explain_image(planted, own, index=index, exclude=own_id).similar]
    assert find_in_index(index, root / groups["grey"][2]) == own_id
    assert find_in_index(index, root / "labels.csv") is None


def test_index_of_other_weights_is_refused(index):
    other = planted_model(seed=1)
    with pytest.raises(UserError, match="was made with 'planted'.*weights planted-seed0.*planted-seed1"):
        explain_image(other, painting([]), index=index)


def test_layer_not_in_index_is_refused(planted, index):
    with pytest.raises(UserError, match="index has no layer 'features.0.0'"):
        explain_image(planted, painting([]), layer="features.0.0", index=index)


def test_page_has_overlays_renders_similar_and_json(planted, index, tmp_path):
    img = painting([((20, 20), RED), ((44, 44), FAINT_BLUE)], size=(96, 64))
    doc = write_explanation(planted, img, tmp_path, Options(k=2, similar=3, renders=2, render_steps=2,
                                                            render_size=32, progress=False),
                            image_name="query.png", index=index)
    lk = doc["lookup"]
    assert lk["units"][0]["channel"] == 0 and lk["units"][0]["mean"] > 0
    assert lk["by_percentile"][0]["channel"] == 1
    for h in lk["units"] + lk["by_percentile"]:
        assert (tmp_path / h["overlay"]).is_file()
        assert Image.open(tmp_path / h["overlay"]).size == (96, 64)
    assert lk["render_layer"] == "features.2.0"  # the conv before the block's ReLU: dead units still render
    rendered = [h for h in lk["units"] + lk["by_percentile"] if "render" in h]
    assert len({h["channel"] for h in rendered}) == 2
    assert [s["meta"]["artist"].startswith("Painter") for s in doc["similar"]] == [True] * 3
    assert all((tmp_path / s["thumb"]).is_file() for s in doc["similar"])
    assert json.loads((tmp_path / "explain.json").read_text()) == doc
    html = (tmp_path / "explain.html").read_text()
    assert "features.2:1" in html and "Most similar paintings" in html and "Painter" in html
    assert all(h["overlay"] in html for h in lk["units"])


def test_page_of_unit_and_class_maps(planted, tmp_path):
    img = painting([((16, 48), RED)], size=(64, 64))
    doc = write_explanation(planted, img, tmp_path, Options(units=[("features.1", 0)], classes=[0],
                                                            methods=["gradcam", "ig"], ig_steps=8,
                                                            progress=False))
    assert doc["lookup"] is None
    [unit] = doc["units"]
    assert unit["layer"] == "features.1" and abs(unit["cell"][0] - 24) <= 4 and abs(unit["cell"][1] - 8) <= 4
    [cls] = doc["classes"]
    assert cls["name"] == "red" and cls["rank"] == 1 and set(cls["maps"]) == {"gradcam", "ig"}
    overlay = np.asarray(Image.open(tmp_path / cls["maps"]["gradcam"]).convert("RGB"), dtype=float)
    plain = np.asarray(Image.open(tmp_path / "painting.jpg").convert("RGB"), dtype=float)
    heat = ((overlay - 0.45 * plain) / 0.55).mean(2)  # the colour-mapped heat: bright on the disc, dark far away
    assert heat[44:52, 12:20].mean() > heat[5:15, 45:60].mean() + 100
    html = (tmp_path / "explain.html").read_text()
    assert "Grad-CAM" in html and "Integrated gradients" in html and "features.1:0" in html
