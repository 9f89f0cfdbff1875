"""The similarity benchmark's measures: artist names joined across spellings, precision@k, chance, nearest rows."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from benchmarks.retrieval import artist_key, by_group, chance_at_k, nearest, precision_at_k

from tests.conftest import SHARED


@pytest.mark.parametrize(("a", "b"), [
    ("GOGH, Vincent van", "Vincent van Gogh"),  # catalogue form turned round
    ("Vincent van Gogh", "Винсент Ван Гог"),  # another script, through the alias table
    ("Paul Cezanne", "Paul Cézanne"),  # accents
    ("ASCH, Pieter Jansz. van", "ASCH, Pieter Jansz.van"),  # a missing space after a dot
    ("COROT, Jean-Baptiste Camille", "Jean Baptiste Camille Corot"),  # hyphens
    ("Goya (Francisco de Goya y Lucientes)", "GOYA Y LUCIENTES, Francisco de"),  # the full name in parentheses
    ("Auguste Renoir", "RENOIR, Pierre-Auguste"),  # a short form, through the alias table
    ("Иван Айвазовский", "AIVAZOVSKY, Ivan Konstantinovich"),  # й decomposed before the alias table
])
def test_one_artist_spelled_two_ways(a, b):
    assert artist_key(a) == artist_key(b) != ""


@pytest.mark.parametrize(("a", "b"), [
    ("HALS, Dirck", "HALS, Frans"),
    ("MARKÓ, Károly the Elder", "MARKÓ, Károly the Younger"),
    ("AVERCAMP, Barend", "AVERCAMP, Hendrick"),
])
def test_different_artists_stay_apart(a, b):
    assert artist_key(a) != artist_key(b)


def test_the_key_itself():
    assert artist_key("GOGH, Vincent van") == "vincent van gogh"
    assert artist_key("  LA TOUR,  Georges de ") == "georges de la tour"


@pytest.mark.parametrize("name", ["", "   ", "Unidentified artist", "American 19th Century"])
def test_no_one_is_no_artist(name):
    assert artist_key(name) == ""


@pytest.mark.skipif(not (SHARED / "data" / "paintings" / "labels.csv").is_file(), reason="needs ../shared")
def test_van_gogh_three_ways_in_the_shared_metadata():
    with open(SHARED / "data" / "paintings" / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    spellings = {r["artist"] for r in rows if artist_key(r["artist"]) == "vincent van gogh"}
    assert spellings == {"GOGH, Vincent van", "Vincent van Gogh", "Винсент Ван Гог"}
    assert sum(artist_key(r["artist"]) == "vincent van gogh" for r in rows) == 21


def test_precision_at_k_by_hand():
    groups = np.array(["a", "a", "b", "b", "b"])
    neighbours = np.array([[1, 2], [2, 3], [3, 4], [0, 1], [2, 0]])
    assert precision_at_k(neighbours, groups, 2).tolist() == [0.5, 0.0, 1.0, 0.0, 0.5]
    assert precision_at_k(neighbours, groups, 1).tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="at least 3"):
        precision_at_k(neighbours, groups, 3)


def test_chance_and_groups():
    groups = np.array(["a", "a", "b", "b", "b"])
    assert chance_at_k(groups).tolist() == pytest.approx([0.25, 0.25, 0.5, 0.5, 0.5])
    got = by_group(np.array([1.0, 0.0, 0.5, 0.5, 1.0]), groups)
    assert got == pytest.approx({"a": 0.5, "b": 2 / 3, "all": 0.6})
    assert by_group(np.array([1.0, 0.0, 0.5]), np.array(["a", "a", "b"]), np.array([True, False, True])) == \
        pytest.approx({"a": 1.0, "b": 0.5, "all": 0.75})


def test_nearest_by_cosine_never_itself():
    v = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [10.0, 0.5]])
    assert nearest(v, 2).tolist() == [[3, 1], [3, 0], [1, 3], [0, 1]]
    exclude = np.zeros((4, 4), bool)
    exclude[0, 3] = True
    assert nearest(v, 1, exclude)[0].tolist() == [1]
