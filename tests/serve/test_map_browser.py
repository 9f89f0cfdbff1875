"""The Map view in Chromium on a generated collection (three families, tiny model): the map draws every painting,
a lasso drawn with the mouse round one family is answered by the units that set it apart and the family's own
paintings, a unit opens the units view with its examples, and the selection's address brings it all back."""

from __future__ import annotations

import math

import pytest

from imagemachines.serve.app import create_app
from tests.collection_map.families import index_families, make_families, quick_map
from tests.conftest import tiny_loaded_model
from tests.serve.browsing import BROWSER_MARKS
from tests.serve.conftest import live_server

pytestmark = BROWSER_MARKS

# the screen rectangle (CSS px) round family `f`'s paintings, from the map's own data and view
AROUND = """(f) => {
  const m = window.mapCanvas, d = m.data, box = m.canvas.getBoundingClientRect(), k = box.width / m.canvas.width;
  const label = d.facets.find((x) => x.name === 'label'), code = label.values.indexOf(f);
  const pts = []; label.codes.forEach((c, i) => { if (c === code) pts.push(m.toScreen(d.x[i], d.y[i])); });
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  return { x0: box.left + (Math.min(...xs) - 10) * k, y0: box.top + (Math.min(...ys) - 10) * k,
           x1: box.left + (Math.max(...xs) + 10) * k, y1: box.top + (Math.max(...ys) + 10) * k, n: pts.length };
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("mapview")
    index = index_families(root, *make_families(root))
    quick_map(index)
    app = create_app({"tiny": tiny_loaded_model()}, cache_dir=root / "cache", indexes=[index])
    with live_server(app) as base:
        yield base, index
    app.state.scheduler.close()


def lasso_round(page, box: dict, steps: int = 40) -> None:
    cx, cy = (box["x0"] + box["x1"]) / 2, (box["y0"] + box["y1"]) / 2
    rx, ry = (box["x1"] - box["x0"]) / 2 * 1.45, (box["y1"] - box["y0"]) / 2 * 1.45   # an ellipse round the box
    page.keyboard.down("Shift")
    page.mouse.move(cx + rx, cy)
    page.mouse.down()
    for i in range(1, steps + 1):
        page.mouse.move(cx + rx * math.cos(2 * math.pi * i / steps), cy + ry * math.sin(2 * math.pi * i / steps))
    page.mouse.up()
    page.keyboard.up("Shift")


def test_selection_contrast_a_unit_and_its_examples(browser, site):
    base, index = site
    page = browser.new_page(viewport={"width": 1300, "height": 820})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/#model=tiny&layer=features.1&steps=8&grid=32")
    page.wait_for_selector("#views a[data-view=map]", state="visible")
    page.click("#views a[data-view=map]")
    page.wait_for_function("document.getElementById('mv-canvas')?.dataset.ready === '1'")
    assert page.is_hidden("#main")
    assert page.evaluate("mapCanvas.n") == 60 and "60 paintings" in page.inner_text("#mv-info")
    drawn = page.evaluate("""() => { const c = mapCanvas.composite.getContext('2d');
        const px = c.getImageData(0, 0, mapCanvas.res, mapCanvas.res).data; let lit = 0;
        for (let i = 3; i < px.length; i += 4) lit += px[i] > 0; return lit; }""")
    assert drawn > 60 * 100                                  # every painting drawn, not a blank composite

    box = page.evaluate(AROUND, "red")
    assert box["n"] == 20
    lasso_round(page, box)
    page.wait_for_selector("#mv-units[data-state=done]")
    note = page.inner_text("#mv-result-note")
    assert note.startswith("20 paintings against 40"), note
    assert "red" in page.inner_text("#mv-meta")
    units = page.locator("#mv-units .mc-unit")
    assert units.count() == 10
    red_ids = {im.id for im in index.images() if im.meta["label"] == "red"}
    shown = {int(v) for v in page.eval_on_selector_all("#mv-units .mc-examples img",
                                                       "els => els.map(e => e.dataset.imageId)")}
    assert shown and shown <= red_ids                        # the unit's paintings *inside* the selection
    selection_url = page.url
    assert "sel=p" in selection_url

    channel = units.first.get_attribute("data-channel")
    units.first.locator("b").click()                         # the unit (its example pictures open a painting)
    page.wait_for_selector("#main", state="visible")
    page.wait_for_selector("#ex-grid[data-state=done]")
    assert channel in page.inner_text("#detail-title")
    assert page.locator("#ex-grid .ex-card").count() == 4    # the index's k examples of that unit
    assert page.input_value("#layer") == "features.3"

    fresh = browser.new_page(viewport={"width": 1300, "height": 820})   # the address alone brings the answer back
    fresh.goto(selection_url)
    fresh.wait_for_selector("#mv-units[data-state=done]")
    assert fresh.inner_text("#mv-result-note").startswith("20 paintings against 40")
    assert fresh.get_attribute("#mv-units .mc-unit", "data-channel") == channel
    assert errors == []


def test_colour_filter_and_search_follow_the_address(browser, site):
    base, _ = site
    page = browser.new_page(viewport={"width": 1300, "height": 820})
    page.goto(f"{base}/#view=map&colour=school&ff=label&fv=1&q=study%201")
    page.wait_for_function("document.getElementById('mv-canvas')?.dataset.ready === '1'")
    assert page.input_value("#mv-colour") == "school"
    assert [t.strip() for t in page.locator("#mv-legend .map-key").all_inner_texts()] == \
        ["Dutch (20)", "Flemish (20)", "Venetian (20)"]
    label_values = page.evaluate("mapCanvas.data.facets.find((f) => f.name === 'label').values")
    shown = page.evaluate("[...mapCanvas.alpha].map((a, i) => a === 1 ? i : -1).filter((i) => i >= 0)")
    titles = page.evaluate("mapCanvas.data.title")
    labels = page.evaluate("mapCanvas.data.facets.find((f) => f.name === 'label').codes")
    expected = [i for i, t in enumerate(titles) if "study 1" in t.lower() and labels[i] == 1]
    assert shown == expected and len(expected) == 11 and label_values[1] == "green"
