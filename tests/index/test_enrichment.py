"""Metadata over-representation in a group of paintings: counts, the exact test, Holm's correction, facets."""

from __future__ import annotations

from math import comb
from types import SimpleNamespace

import numpy as np
import pytest

from imagemachines.errors import UserError
from imagemachines.index.enrichment import (
    SIZE_FACET,
    collection_facets,
    date_bin,
    enrich,
    format_p,
    holm,
    majority,
    make_facet,
    provenance_warnings,
    significant,
    size_bin,
)


def image(meta: dict, width: int = 300, height: int = 200):
    return SimpleNamespace(meta=meta, width=width, height=height)


def hypergeom_tail(k: int, n_coll: int, k_coll: int, n_grp: int) -> float:
    """P(X >= k) for X ~ the number of marked items among n_grp drawn from n_coll with k_coll marked."""
    total = comb(n_coll, n_grp)
    return sum(comb(k_coll, i) * comb(n_coll - k_coll, n_grp - i) for i in range(k, min(k_coll, n_grp) + 1)) / total


def test_a_planted_over_representation_is_found_with_the_exact_p_value_and_ratio():
    # 40 paintings: 8 portraits, 32 landscapes; the group holds 6 portraits and 2 landscapes.
    labels = ["portrait"] * 8 + ["landscape"] * 32
    facet = make_facet("label", labels)
    group = [0, 1, 2, 3, 4, 5, 20, 21]
    result = {e.value: e for e in enrich([facet], group)}
    portrait = result["portrait"]
    assert (portrait.in_group, portrait.group, portrait.in_collection, portrait.collection) == (6, 8, 8, 40)
    assert portrait.ratio == pytest.approx((6 / 8) / (8 / 40))  # ×3.75
    assert portrait.p == pytest.approx(hypergeom_tail(6, 40, 8, 8), rel=1e-9)
    assert result["landscape"].ratio == pytest.approx((2 / 8) / (32 / 40))
    assert result["landscape"].p == pytest.approx(hypergeom_tail(2, 40, 32, 8), rel=1e-9)  # near 1
    # two values tested: Holm multiplies the smallest by 2, the next by 1 (and keeps the order)
    assert portrait.p_adjusted == pytest.approx(2 * portrait.p)
    assert result["landscape"].p_adjusted == pytest.approx(max(result["landscape"].p, 2 * portrait.p))
    assert [e.value for e in significant(result.values())] == ["portrait"]
    assert portrait.label() == f"portrait ×3.8, {format_p(portrait.p_adjusted)}"


def test_a_random_group_finds_nothing_significant():
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c", "d"], size=500).tolist()
    group = rng.choice(500, size=30, replace=False)
    assert significant(enrich([make_facet("label", labels)], group)) == []


def test_holm_step_down_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02 .03 .06 .06
    assert holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm(np.array([0.6, 0.7])).tolist() == [1.0, 1.0]
    assert holm(np.array([])).size == 0


def test_missing_values_count_on_neither_side_and_masks_equal_ids():
    labels = ["x", "x", None, "y", "", "y", "x", "y"]
    facet = make_facet("label", labels)
    assert facet.values == ("x", "y") and facet.codes.tolist() == [0, 0, -1, 1, -1, 1, 0, 1]
    by_ids = enrich([facet], [0, 1, 2])
    mask = np.zeros(8, dtype=bool)
    mask[[0, 1, 2]] = True
    assert by_ids == enrich([facet], mask)
    x = next(e for e in by_ids if e.value == "x")
    assert (x.in_group, x.group, x.in_collection, x.collection) == (2, 2, 3, 6)


def test_two_selections_against_each_other():
    labels = ["a"] * 10 + ["b"] * 10 + ["a"] * 80  # images 20.. are outside both selections
    facet = make_facet("label", labels)
    first, second = list(range(0, 10)), list(range(10, 20))
    a = next(e for e in enrich([facet], first, against=second) if e.value == "a")
    assert (a.in_group, a.group, a.in_collection, a.collection) == (10, 10, 10, 20)
    assert a.ratio == pytest.approx(2.0)


def test_facets_bin_dates_and_sizes_skip_identifiers_and_keep_sources():
    images = [image({"title": f"t{i}", "YEAR": y, "source": s, "artist": a}, w, h)
              for i, (y, s, a, w, h) in enumerate([
                  ("1655", "museum", "Rembrandt", 320, 200), ("c. 1660-65", "museum", "Rembrandt", 100, 80),
                  ("1890", "scan", "Monet", 320, 211), ("", "scan", "Monet", 0, 0)])]
    facets = {f.name: f for f in collection_facets(images)}
    assert "title" not in facets  # one value per painting: an identifier, not a group
    assert facets["YEAR (50 years)"].values == ("1650–1699", "1850–1899")
    assert facets["YEAR (50 years)"].codes.tolist() == [0, 0, 1, -1]
    assert facets[SIZE_FACET].codes.tolist()[-1] == -1
    assert [facets[SIZE_FACET].values[c] for c in facets[SIZE_FACET].codes[:3]] == ["257–512 px", "≤ 128 px",
                                                                                    "257–512 px"]
    assert facets["source"].provenance and facets[SIZE_FACET].provenance and not facets["artist"].provenance
    assert make_facet("Width", []).provenance and make_facet("height", []).provenance  # a CSV's pixel columns
    with pytest.raises(UserError, match="No metadata column 'school'"):
        collection_facets(images, columns=["school"])
    assert [f.name for f in collection_facets(images, columns=["artist"])] == ["artist", SIZE_FACET]


@pytest.mark.parametrize(("text", "expected"), [("1655", "1650–1699"), ("c. 1700-05", "1700–1749"),
                                                ("before 1499", "1450–1499"), ("n.d.", None), ("", None),
                                                ("12345", None)])
def test_date_bins(text, expected):
    assert date_bin(text) == expected


@pytest.mark.parametrize(("w", "h", "expected"), [(128, 90, "≤ 128 px"), (129, 20, "129–256 px"),
                                                  (320, 400, "257–512 px"), (2000, 10, "> 1024 px"), (0, 0, None)])
def test_size_bins(w, h, expected):
    assert size_bin(w, h) == expected


def test_provenance_warnings_name_only_photo_facets():
    n = 60
    source = ["thumbs"] * 10 + ["scans"] * 50
    label = ["portrait"] * 10 + ["landscape"] * 50
    facets = [make_facet("source", source), make_facet("label", label)]
    found = enrich(facets, list(range(10)))
    assert {e.facet for e in significant(found)} == {"source", "label"}
    assert [(e.facet, e.value) for e in provenance_warnings(found)] == [("source", "thumbs")]
    assert majority(facets[1], list(range(8)) + [30, 31]) == ("portrait", 0.8)
    assert majority(make_facet("x", [None] * n), [0, 1]) is None


def test_pixel_size_columns_of_a_catalogue_are_about_the_photograph():
    """The shared paintings' labels.csv has width and height columns (of the photographs): a map selection that
    is one photo source shows up there first, and must be warned about, not read as a kind of painting."""
    facets = {f.name: f for f in [make_facet("width", ["320", "320", "120"]), make_facet("Height", ["211", "211", "9"]),
                                  make_facet("label", ["a", "a", "b"])]}
    assert facets["width"].provenance and facets["Height"].provenance and not facets["label"].provenance


def test_bad_groups_are_refused():
    facet = make_facet("label", ["a", "b", "a"])
    with pytest.raises(UserError, match="0…2"):
        enrich([facet], [3])
    with pytest.raises(UserError, match="one entry per image"):
        enrich([facet], np.array([True, False]))
    assert enrich([], [0]) == []
