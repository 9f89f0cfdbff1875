"""``map.html`` (the map command's and the atlas's ``--map``): written with its sheets and scripts, works offline
from file:// in Chromium, and an atlas links the clusters' units to the unit pages it has."""

from __future__ import annotations

import re

import pytest

from imagemachines.atlas import AtlasSettings, build_atlas
from imagemachines.collection_map.page import write_map_page
from imagemachines.errors import UserError
from tests.collection_map.families import index_families, make_families, quick_map
from tests.conftest import tiny_loaded_model
from tests.serve.browsing import BROWSER_MARKS
from tests.serve.conftest import browser  # noqa: F401, F811 - the Chromium fixture


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    index = index_families(root, *make_families(root))
    quick_map(index)
    return root, index


def test_the_atlas_adds_the_map_and_links_only_the_units_it_rendered(mapped, tmp_path):
    _, index = mapped
    site = tmp_path / "site"
    build_atlas(tiny_loaded_model(), site, AtlasSettings(layers=["features.3"], channels="0-11", size=32, steps=2,
                                                         index=index.path, map=True), progress=False)
    page = site / "tiny" / "map" / "map.html"
    assert page.is_file() and (page.parent / "sheet-0.jpg").is_file()
    assert 'href="map/map.html"' in (site / "tiny" / "index.html").read_text()
    import json

    data = json.loads(re.search(r'<script type="application/json" id="map-data">(.*?)</script>', page.read_text(),
                                re.S).group(1))
    units = [u for c in data["clusters"] for u in c["units"]]
    assert units and "href" not in data                      # no file paths in a site that may be published
    for u in units:
        assert u["href"] == (f"../features.3/{u['channel']}.html" if u["channel"] < 12 else None)
        if u["href"]:
            assert (page.parent / u["href"]).resolve().is_file()


def test_map_without_an_index_or_without_a_map_is_refused_before_rendering(mapped, tmp_path):
    root, _ = mapped
    with pytest.raises(UserError, match="--map needs --index"):
        build_atlas(tiny_loaded_model(), tmp_path / "a", AtlasSettings(layers=["features.3"], channels="0", size=32,
                                                                       steps=2, map=True), progress=False)
    bare_root = tmp_path / "bare"
    bare = index_families(bare_root, *make_families(bare_root, per_family=2))
    with pytest.raises(UserError, match="no map yet"):
        build_atlas(tiny_loaded_model(), tmp_path / "b", AtlasSettings(layers=["features.3"], channels="0", size=32,
                                                                       steps=2, index=bare.path, map=True),
                    progress=False)
    assert not (tmp_path / "b" / "tiny" / "img").exists()


@BROWSER_MARKS[0]
@BROWSER_MARKS[1]
def test_the_static_page_works_from_file_urls(mapped, tmp_path, browser):  # noqa: F811
    _, index = mapped
    page_path = write_map_page(index, None, tmp_path / "static", progress=False)
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(page_path.as_uri())
    page.wait_for_function("document.getElementById('map-canvas').dataset.ready === '1'")
    assert page.evaluate("mapCanvas.n") == 60
    assert page.locator("#map-clusters li").count() == 3
    page.select_option("#map-colour", "label")
    assert sorted(t.strip() for t in page.locator("#map-legend .map-key").all_inner_texts()) == \
        ["blue (20)", "green (20)", "red (20)"]
    page.fill("#map-search", "green study 1")
    page.wait_for_function("[...mapCanvas.alpha].filter((a) => a === 1).length === 11")
    assert errors == []
