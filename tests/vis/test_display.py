"""Inline display in Jupyter: renders, lists of renders, contact sheets and examples sheets show themselves."""

from __future__ import annotations

import io

from PIL import Image

from imagemachines.vis import contact_sheet, render
from tests.conftest import tiny_loaded_model


def test_renders_and_contact_sheets_show_themselves(tmp_path):
    renders = render(tiny_loaded_model(), ["features.1:0", "features.1:1"], size=32, steps=2)
    png = renders[0]._repr_png_()
    assert Image.open(io.BytesIO(png)).size == (32, 32)
    assert Image.open(io.BytesIO(png)).tobytes() == renders[0].image.tobytes()
    html = renders._repr_html_()
    assert html.count("<img src=\"data:image/png;base64,") == 2 and "features.1:1" in html
    maco = render(tiny_loaded_model(), "features.1:0", method="maco", size=32, steps=2)
    both = type(renders)([renders[0], maco[0]])._repr_html_()  # one unit, two methods: the captions tell them apart
    assert f"features.1:0 · lucid · {renders[0].activation:.2f}<" in both
    assert f"features.1:0 · maco · {maco[0].activation:.2f}<" in both
    sheet = contact_sheet(renders, tmp_path / "sheet.png")
    assert sheet == tmp_path / "sheet.png" and sheet._repr_png_() == (tmp_path / "sheet.png").read_bytes()


def test_an_examples_sheet_shows_the_top_images_with_heat(tmp_path):
    from imagemachines.atlas.examples import examples_sheet
    from imagemachines.index import build_index, open_index
    from tests.index.conftest import blob_model, make_collection

    model = blob_model()
    col = make_collection(tmp_path / "images")
    index = open_index(build_index(model, col.root, tmp_path / "index", layers=["features.1"], k=3, progress=False))
    sheet = examples_sheet(index, model, "features.1", 0, k=3)
    assert sheet.paths == [p for p, _ in col.red[:3]]
    html = sheet._repr_html_()
    assert html.count("data:image/png;base64,") == 3 and "features.1:0" in html
    assert sheet.photos == ["96 × 64 px"] * 3 and html.count("· 96 × 64 px") == 3  # each photograph's size
