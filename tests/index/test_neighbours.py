"""Exact search, the "why" of a neighbour on planted cases, and near-duplicate grouping."""

from __future__ import annotations

import numpy as np
import pytest

from imagemachines.index.neighbours import best, exact_scores, group_duplicates, layer_reasons, unit_reasons


def test_exact_scores_are_the_dot_products_of_float16_rows(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((70_000, 8)).astype(np.float16)  # more than one step of rows
    path = tmp_path / "rows.npy"
    np.save(path, rows)
    mm = np.load(path, mmap_mode="r")
    q = rng.standard_normal(8).astype(np.float32)
    got = exact_scores(mm, q)
    want = rows.astype(np.float64) @ q.astype(np.float16).astype(np.float64)
    assert got.dtype == np.float32 and got.shape == (70_000,)
    assert np.abs(got - want).max() < 2e-2 * np.abs(want).max()


def test_best_orders_by_score_then_id_and_excludes():
    scores = np.array([0.5, 0.9, 0.9, 0.1, 0.7])
    assert best(scores, 3) == [1, 2, 4]
    assert best(scores, 3, exclude=[1]) == [2, 4, 0]
    assert best(scores, 10, exclude=[1, 1]) == [2, 4, 0, 3]
    assert best(np.array([0.2, 0.2, 0.2]), 2) == [0, 1]  # ties by id, also across the partition's cut
    assert best(scores, 0) == [] and best(np.array([]), 3) == []
    assert best(np.array([np.nan, 0.3]), 2) == [1, 0]


def test_content_why_names_the_planted_shared_unit():
    # a planted case: both paintings share unit 2 strongly; unit 0 is strong in the query only
    q = np.array([0.8, 0.1, 0.5, 0.0, 0.3])
    x = np.array([0.0, 0.1, 0.9, 0.4, 0.1])
    reasons = unit_reasons("content", "features.18", q, x, units=5, top=2)
    assert [(r.layer, r.channel) for r in reasons] == [("features.18", 2), ("features.18", 4)]
    assert reasons[0].share == pytest.approx(0.45 / (0.01 + 0.45 + 0.03))


def test_composition_why_sums_a_unit_over_its_cells():
    # 3 units × 4 cells: unit 1 matches in two cells, unit 0 in one, unit 2 is opposite
    q = np.array([1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0], dtype=float)
    x = np.array([1, 0, 0, 0, 1, 1, 0, 0, -1, 0, 0, 0], dtype=float)
    reasons = unit_reasons("composition", "features.13", q, x, units=3)
    assert [r.channel for r in reasons] == [1, 0]  # unit 2 adds nothing positive and is not a reason
    # shares of the score (2 + 1 - 1 = 2): unit 1 alone adds as much as the whole score, unit 2 takes some back
    assert [r.share for r in reasons] == pytest.approx([1.0, 0.5])


def test_no_reasons_when_nothing_is_shared():
    assert unit_reasons("content", "l", np.array([1.0, 0.0]), np.array([0.0, 1.0]), units=2) == []
    assert layer_reasons(["a"], [2], np.array([1.0, 0.0]), np.array([-1.0, 0.0])) == []


def test_style_why_ranks_the_layers_by_matching_statistics():
    # two layers of 2 values: the second matches, the first barely
    q = np.array([0.6, 0.1, 0.5, 0.6])
    x = np.array([0.1, 0.6, 0.5, 0.6])
    reasons = layer_reasons(["features.3", "features.13"], [2, 2], q, x)
    assert [r.layer for r in reasons] == ["features.13", "features.3"]
    assert reasons[0].channel is None
    assert sum(r.share for r in reasons) == pytest.approx(1.0)


def test_duplicates_are_grouped_and_copies_of_the_query_set_apart():
    prints = {0: np.array([1.0, 0.0, 0.0]), 1: np.array([0.0, 1.0, 0.0]), 2: np.array([0.02, 1.0, 0.0]),
              3: np.array([0.0, 0.0, 1.0]), 4: np.array([0.99, 0.05, 0.0]), 5: np.array([0.0, 0.5, 0.5])}
    query = np.array([1.0, 0.01, 0.0])
    same, groups = group_duplicates([1, 4, 2, 3, 5], prints.__getitem__, query, 0.95)
    assert same == [4]  # the query's own copy (from another source) is not "similar"
    assert groups == [[1, 2], [3], [5]]  # 2 is 1's copy, shown under it; 5 is close to neither
    _, groups = group_duplicates([1, 2, 3], prints.__getitem__, None, 0.95)
    assert groups == [[1, 2], [3]]
