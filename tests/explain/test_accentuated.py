"""The explain page's accentuated paintings: for the first units the painting drives most, the painting changed
just enough that the unit fires strongly, beside the unit's map."""

from __future__ import annotations

import json

from PIL import Image

from imagemachines.explain.page import Options, render_layer, write_explanation
from imagemachines.vis import read_recipe
from tests.explain.planted import RED, painting


def test_the_top_units_get_the_painting_accentuated_for_them(planted, tmp_path):
    img = painting([((20, 20), RED)], size=(96, 64))
    doc = write_explanation(planted, img, tmp_path, Options(k=3, renders=0, accentuations=2, accent_steps=6,
                                                            accent_size=48, progress=False), image_name="q.png")
    lk = doc["lookup"]
    accented = [h for h in lk["units"] if "accentuated" in h]
    assert [h["channel"] for h in accented] == [h["channel"] for h in lk["units"][:2]] and lk["accentuated"] == 2
    at = render_layer(planted, lk["layer"])  # the conv before the block's closing ReLU, as the renders: a unit
    assert at != lk["layer"]                 # at its bound still has a gradient there
    for h in accented:
        path = tmp_path / h["accentuated"]
        assert Image.open(path).size == (48, 32)  # the painting's aspect, at the asked size
        recipe = read_recipe(path)
        assert recipe["method"] == "accentuate" and recipe["unit"] == f"{at}:{h['channel']}"
        assert h["accent_gain"] == recipe["accentuation"]["gain"]
    assert "accentuated" not in lk["units"][2]
    html = (tmp_path / "explain.html").read_text()
    assert all(h["accentuated"] in html for h in accented) and "the painting accentuated for" in html
    assert json.loads((tmp_path / "explain.json").read_text()) == doc


def test_no_accentuations_leave_the_page_as_it_was(planted, tmp_path):
    doc = write_explanation(planted, painting([((20, 20), RED)]), tmp_path, Options(k=2, renders=0, progress=False))
    assert doc["lookup"]["accentuated"] == 0
    assert not any("accentuated" in h for h in doc["lookup"]["units"])
    assert "the painting accentuated for" not in (tmp_path / "explain.html").read_text()
