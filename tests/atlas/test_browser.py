"""A small atlas opened from file:// in headless Chromium: walk model → layer → unit, no broken image or link."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from imagemachines.atlas import AtlasSettings, build_atlas
from tests.conftest import tiny_loaded_model
from tests.serve.browsing import ARGS, BROWSER_MARKS, CHROMIUM

pytestmark = BROWSER_MARKS

CHECK_PAGE = """async () => {
  const imgs = [...document.images];
  imgs.forEach((img) => { img.loading = "eager"; });
  const results = await Promise.all(imgs.map((img) => img.decode().then(() => null, () => img.src)));
  return {broken: results.filter((r) => r !== null).concat(imgs.filter((i) => !i.naturalWidth).map((i) => i.src)),
          images: imgs.length, links: [...document.links].map((a) => a.href)};
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("atlas")
    build_atlas(tiny_loaded_model(), root, AtlasSettings(layers=["features.1", "features.3"], channels="0-2",
                                                         methods=["lucid", "maco"], size=32, steps=2),
                progress=False)
    return root


def test_walk_model_layer_unit_and_check_every_image_and_link(site):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((site / "index.html").as_uri())
        page.click("text=tiny")
        page.click("a[href='features.3/index.html']")
        assert page.inner_text("h1") == "tiny · features.3"
        page.click("a[href='1.html']")
        assert page.inner_text("h1") == "tiny · features.3 · unit 1"
        assert page.locator("img").count() == 2  # lucid and maco
        page.click("a[rel=next]")
        assert page.url.endswith("/tiny/features.3/2.html")
        serve = page.get_attribute("a.serve", "href")
        assert serve.startswith("http://127.0.0.1:8000/#model=tiny&layer=features.3&unit=2")

        # every page of the site: every image shows, every local link leads to a file
        pages = sorted(site.rglob("*.html"))
        assert len(pages) == 1 + 1 + 2 + 6
        seen_images = 0
        for html in pages:
            page.goto(html.as_uri())
            found = page.evaluate(CHECK_PAGE)
            assert found["broken"] == [], html
            seen_images += found["images"]
            for href in found["links"]:
                url = urlsplit(href)
                if url.scheme == "file":
                    assert Path(unquote(url.path)).is_file(), f"{html}: broken link {href}"
                else:
                    assert href.startswith("http://127.0.0.1:8000/#model=tiny&"), href
        assert seen_images >= 6 + 12 + 6  # model strips, layer grids, unit pages
        assert errors == []
        browser.close()
