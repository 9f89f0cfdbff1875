"""Reverse lookup without an index: the planted detector is the unit a painting of its object drives most."""

from __future__ import annotations

import json

import pytest

from imagemachines.errors import UnitOutOfRange, UnknownLayer, UserError
from imagemachines.explain import explain_image, parse_class, parse_unit
from tests.explain.planted import BLUE, RED, painting, peak, planted_model


@pytest.fixture(scope="module")
def model():
    return planted_model()


@pytest.mark.parametrize(("colour", "unit"), [(RED, 0), (BLUE, 1)])
def test_the_planted_unit_ranks_first_and_its_map_peaks_on_the_object(model, colour, unit):
    e = explain_image(model, painting([((44, 20), colour)]), k=4)
    assert e.layer == "features.2"  # the deepest block with a map (not its container `features`)
    assert e.units[0].channel == unit and len(e.units) == 4
    values = [h.value for h in e.units]
    assert values == sorted(values, reverse=True)
    assert e.units[0].cell == (5, 11)  # the disc at (44, 20) in a 64² image is cell (row 5, col 11) of 16²
    assert peak(e.maps[unit]) == (11, 5)
    assert e.by_percentile == [] and e.similar == [] and e.units[0].percentile is None


def test_layer_and_k_are_honoured(model):
    e = explain_image(model, painting([((10, 50), RED)]), layer="features.0", k=100)
    assert e.layer == "features.0" and len(e.units) == 8  # k capped at the layer's units
    (row, col), top = e.units[0].cell, e.units[0]
    assert top.channel == 0 and (row - 50) ** 2 + (col - 10) ** 2 <= 8**2  # on the disc (radius 7)
    assert e.pooled.shape == (8,)


def test_to_json_is_plain_json(model):
    e = explain_image(model, painting([((10, 50), RED)]), k=2)
    data = json.loads(json.dumps(e.to_json()))
    assert data["layer"] == "features.2" and data["units"][0]["channel"] == 0 and data["units"][0]["cell"] == [12, 2]


def test_bad_input_is_clear(model):
    img = painting([])
    with pytest.raises(UnknownLayer, match="no layer 'features.7'"):
        explain_image(model, img, layer="features.7")
    with pytest.raises(UserError, match="at least 1"):
        explain_image(model, img, k=0)
    assert parse_class(model, "Blue") == 1 and parse_class(model, "2") == 2
    with pytest.raises(UserError, match="no class 'green'"):
        parse_class(model, "green")
    with pytest.raises(UnitOutOfRange):
        parse_class(model, "7")
    assert parse_unit(model, "features.1:3") == ("features.1", 3)
    with pytest.raises(UserError, match="LAYER:CHANNEL"):
        parse_unit(model, "features.1")
    with pytest.raises(UnitOutOfRange):
        parse_unit(model, "features.1:8")
    with pytest.raises(UnknownLayer, match="--class"):
        parse_unit(model, "logits:1")


def test_class_names_missing_means_numbers_only():
    m = planted_model()
    m.class_names = None
    with pytest.raises(UserError, match="no class names"):
        parse_class(m, "red")
    assert parse_class(m, "0") == 0
