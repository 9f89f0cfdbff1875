"""`atlas --index`: a unit page shows the collection's strongest and weakest paintings with heat overlays and
metadata (a network with planted detectors, so the right answer is known)."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from imagemachines.atlas import AtlasSettings, build_atlas
from imagemachines.errors import UserError
from imagemachines.index import build_index
from tests.conftest import tiny_loaded_model
from tests.index.conftest import blob_model, make_collection


def test_unit_pages_show_top_and_bottom_paintings_with_heat_and_metadata(tmp_path):
    model = blob_model()
    col = make_collection(tmp_path / "images")
    csv = tmp_path / "meta.csv"
    csv.write_text("path,AUTHOR,TITLE\n" + "".join(f"{p},Painter {i},<Red {i}>\n" for i, (p, _) in
                                                  enumerate(col.red)))
    index = build_index(model, col.root, tmp_path / "index", layers=["features.1"], k=4, metadata=csv,
                        progress=False)
    build_atlas(model, tmp_path / "site", AtlasSettings(layers=["features.1"], size=32, steps=2, index=index),
                progress=False)
    page = (tmp_path / "site" / "blobnet" / "features.1" / "0.html").read_text()
    assert "Strongest in the collection" in page and "Weakest in the collection" in page
    # redness detector: the strongest red disc first, with its metadata (escaped)
    top = page[page.index("Strongest"):page.index("Weakest")]
    assert top.index("TITLE: &lt;Red 0&gt;") < top.index("TITLE: &lt;Red 1&gt;")
    bottom = page[page.index("Weakest"):]
    assert "Red" not in bottom and ("file: blue/tint" in bottom or "file: grey/grey" in bottom)
    files = re.findall(r'src="(ex/[^"]+)"', page)
    assert len(files) == 8
    for rel in files:
        assert (tmp_path / "site" / "blobnet" / "features.1" / rel).is_file()
    # the overlay is hot where the disc is: its pixel is redder/brighter than the far corner
    heat = Image.open(tmp_path / "site" / "blobnet" / "features.1" / files[0]).convert("L")
    x, y = col.red[0][1]
    sx, sy = heat.width / 96, heat.height / 64
    corner = (2, 2) if x > 48 else (heat.width - 3, heat.height - 3)
    assert heat.getpixel((int(x * sx), int(y * sy))) > heat.getpixel(corner) + 40


def test_an_index_of_other_weights_is_refused(tmp_path):
    col = make_collection(tmp_path / "images", n_red=2, n_tint=1, n_grey=1)
    index = build_index(blob_model(), col.root, tmp_path / "index", layers=["features.1"], k=2, progress=False)
    with pytest.raises(UserError, match="other|weights"):
        build_atlas(tiny_loaded_model(), tmp_path / "site", AtlasSettings(layers=["features.3"], channels="0",
                                                                          size=32, steps=2, index=index),
                    progress=False)


def test_unit_pages_say_how_examples_were_ranked_what_they_share_and_how_they_were_photographed(tmp_path):
    model = blob_model()
    col = make_collection(tmp_path / "images")
    csv = tmp_path / "meta.csv"
    rows = [(p, "red", "thumbs") for p, _ in col.red] + [(p, "other", "scans") for p in col.tints + col.grey]
    csv.write_text("path,label,source\n" + "".join(f"{p},{lab},{src}\n" for p, lab, src in rows))
    index = build_index(model, col.root, tmp_path / "index", layers=["features.1"], k=6, metadata=csv,
                        progress=False)
    build_atlas(model, tmp_path / "site", AtlasSettings(layers=["features.1"], size=32, steps=2, index=index),
                progress=False)
    page = " ".join((tmp_path / "site" / "blobnet" / "features.1" / "0.html").read_text().split())
    top, bottom = page[page.index("Strongest"):page.index("Weakest")], page[page.index("Weakest"):]
    assert "Over-represented among its top 6 paintings in the index (of 16): label: <b>red ×2.7, p &lt; 0.001" in top
    assert "dominated by how they were photographed (source: thumbs ×2.7" in top
    assert top.count("96 × 64 px · thumbs") == 6 and len(re.findall(r"96 × 6[4-8] px · scans", bottom)) == 6
    assert "photographed" not in bottom and "label: <b>red" not in bottom
    assert "over the interior of its map" in page and 'id="border"' in page and "Border unit" not in page
