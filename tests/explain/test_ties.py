"""A block that closes with ReLU6 saturates: many units reach exactly 6, and a ranking by value is decided by
tie-breakers. The units are ranked where values do not saturate (the tap before the clamp), the index records
that tap by default, an index without it is said to be so, and any tie that remains is counted and said."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imagemachines.explain import explain_image
from imagemachines.explain.lookup import activations
from imagemachines.explain.page import Options, write_explanation
from imagemachines.index import build_index, default_layers, open_index
from tests.explain.planted import RED, clamped_model, painting


@pytest.fixture(scope="module")
def clamped():
    return clamped_model()


@pytest.fixture(scope="module")
def query():
    return painting([((20, 20), RED), ((44, 40), (20, 200, 60))], seed=11)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("clamped-paintings")
    for i in range(8):
        painting([((10 + 5 * i, 50 - 4 * i), (40 * i % 255, 200, 255 - 30 * i))], seed=i).save(root / f"p{i}.png")
    return root


def test_a_block_closing_with_relu6_is_ranked_before_the_clamp_without_ties(clamped, query):
    after = activations(clamped, query, ["features.1"])["features.1"].flatten(1).max(1).values.numpy()
    assert (after == 6).sum() >= 8  # the problem is real here: at least half the units tie at the bound
    e = explain_image(clamped, query, k=8)
    assert (e.layer, e.ranked_at, e.clamp) == ("features.1", "features.1.1", "ReLU6")
    before = activations(clamped, query, ["features.1.1"])["features.1.1"].flatten(1).max(1).values.numpy()
    assert [h.channel for h in e.units] == np.argsort(-before, kind="stable")[:8].tolist()
    assert [h.value for h in e.units] == pytest.approx(sorted(before, reverse=True)[:8], rel=1e-5)
    assert e.units[0].value > 6 and e.ties == []
    assert all(h.layer == "features.1" for h in e.units)  # the units are the block's; only the values are earlier
    assert e.maps[e.units[0].channel].max() == pytest.approx(e.units[0].value, rel=1e-5)


def test_ranking_at_the_clamp_itself_counts_and_says_the_ties(clamped, query, tmp_path):
    e = explain_image(clamped, query, layer="features.1.2", k=8)  # the ReLU6 module: asked for, so kept
    assert e.ranked_at == "features.1.2" and e.clamp is None
    [tie] = e.ties
    assert (tie.by, tie.at, tie.shown) == ("value", 6.0, 8) and tie.units >= 8
    doc = write_explanation(clamped, query, tmp_path, Options(layer="features.1.2", k=8, renders=0, progress=False))
    assert doc["lookup"]["ties"] == [tie.as_dict()]
    html = (tmp_path / "explain.html").read_text()
    assert f"{tie.units} units of features.1.2 are tied at 6 (8 shown)" in html
    assert "larger mean over the painting comes first" in html


def test_the_index_records_the_tap_before_the_clamp_and_explain_ranks_there(clamped, query, collection, tmp_path):
    assert default_layers(clamped)[:4] == ["features.0.1", "features.0", "features.1.1", "features.1"]
    index = open_index(build_index(clamped, collection, tmp_path / "idx", k=4, progress=False))
    e = explain_image(clamped, query, index=index, k=6, similar=3)
    assert (e.layer, e.ranked_at, e.note) == ("features.1", "features.1.1", None)
    for h in e.units + e.by_percentile:
        assert h.percentile == pytest.approx(index.percentile("features.1.1", h.channel, h.value))
    pooled = activations(clamped, query, ["features.1"])["features.1"].flatten(1).mean(1).numpy()
    plain = index.similar("features.1", pooled, k=3)  # similar paintings: by content, in the block itself
    shown = [i for n in e.neighbours for i in (n.image_id, *n.copies)]  # near-duplicates grouped under one
    assert shown[:2] == [i for i, _ in plain[:2]] and {i for i, _ in plain} <= set(shown)
    assert [s for _, s in e.similar[:2]] == pytest.approx([s for _, s in plain[:2]], abs=1e-3)  # rows are float16
    doc = write_explanation(clamped, query, tmp_path / "page", Options(k=6, similar=3, renders=0, progress=False),
                            index=index)
    assert doc["lookup"]["ranked_at"] == "features.1.1" and doc["similar_basis"] == "content at features.1"
    best = doc["lookup"]["units"][0]
    assert best["times_collection_max"] == pytest.approx(best["value"] / index.stats("features.1.1",
                                                                                      best["channel"]).max)
    html = (tmp_path / "page" / "explain.html").read_text()
    assert "measured\n  at features.1.1, before features.1's closing ReLU6" in html
    assert "Similar by <b>content at features.1</b>" in html
    assert json.loads((tmp_path / "page" / "explain.json").read_text()) == doc


def test_an_index_without_the_tap_ranks_on_the_block_and_says_why(clamped, query, collection, tmp_path):
    old = open_index(build_index(clamped, collection, tmp_path / "old", layers=["features.1"], k=4,
                                 progress=False))
    e = explain_image(clamped, query, index=old, k=6)
    assert e.ranked_at == "features.1" and "has no features.1.1" in e.note and "Index the collection again" in e.note
    assert any(t.by == "value" and t.at == 6.0 for t in e.ties)
