"""Headless Chromium drives the collection views: a unit's paintings, a painting opened large with its own units,
an uploaded painting explained, and deep links that restore each view."""

from __future__ import annotations

import pytest

from imagemachines.models import LOGITS
from imagemachines.serve.app import create_app
from imagemachines.serve.schemas import Limits
from tests.conftest import tiny_loaded_model
from tests.serve.browsing import ARTIFACTS, BROWSER_MARKS
from tests.serve.collection_fixtures import build_tiny_index, painting
from tests.serve.conftest import live_server

pytestmark = BROWSER_MARKS

VIEW = "model=tiny&method=lucid&size=64&steps=4&seed=0&grid=32"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return build_tiny_index(tmp_path_factory.mktemp("collection"))


@pytest.fixture
def site(tmp_path, spy, index):
    app = create_app({"tiny": tiny_loaded_model()}, cache_dir=tmp_path / "cache", render_fn=spy,
                     limits=Limits(max_size=96, max_steps=32), indexes=[index])
    with live_server(app) as base:
        yield base
    app.state.scheduler.close()


def watch(page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "") else errors.append(
        f"{r.url} {r.failure}"))
    # 409 to a DELETE: app.js withdrew a render that had just finished (a benign race); anything else is an error
    page.on("response", lambda r: errors.append(f"{r.request.method} {r.status} {r.url}")
            if r.status >= 400 and not (r.status == 409 and r.request.method == "DELETE") else None)
    return errors


def layer_of(index) -> str:
    return [name for name in index.layers if name != LOGITS][-1]


def test_a_unit_shows_its_paintings_and_a_click_opens_one_with_its_units(browser, site, index):
    layer = layer_of(index)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = watch(page)
    page.goto(f"{site}/#{VIEW}&layer={layer}&unit=1")
    page.wait_for_selector("#ex-grid[data-state=done]")
    expected = [e.image_id for e in index.examples(layer, 1, k=12)]
    cards = page.query_selector_all("#ex-grid .ex-card")
    assert [int(c.get_attribute("data-image-id")) for c in cards] == expected
    assert "Painting" in page.inner_text("#ex-grid") or "Twin" in page.inner_text("#ex-grid")
    page.wait_for_function("[...document.querySelectorAll('#ex-grid img')].every(i => i.complete && i.naturalWidth)")
    assert "/overlay?" in cards[0].query_selector("img").get_attribute("src")
    page.uncheck("#ex-heat")  # the heat overlay toggle: plain paintings, and the address remembers it
    assert "/thumb?" in cards[0].query_selector("img").get_attribute("src")
    assert "heat=0" in page.url
    page.check("#ex-heat")

    cards[0].click()
    page.wait_for_selector("#painting:not([hidden]) #pv-units .pv-unit")
    assert f"image={expected[0]}" in page.url and "unit=1" in page.url
    assert page.inner_text("#pv-title") == index.image(expected[0]).meta["title"]
    src = page.get_attribute("#pv-img", "src")
    assert f"/images/{expected[0]}/overlay?" in src and f"layer={layer}" in src and "channel=1" in src
    page.wait_for_function("document.getElementById('pv-img').naturalWidth > 0")
    assert "Compared by content at " in page.inner_text("#pv-sim-note")  # what they were compared by, as the CLI says
    assert page.inner_text("#pv-rank").startswith("ranked by their percentile in the collection")
    page.keyboard.press("ArrowRight")  # the next unit: the painting stays open with that unit's heatmap
    page.wait_for_function("location.hash.includes('unit=2')")
    assert f"image={expected[0]}" in page.url
    page.wait_for_function("document.getElementById('pv-img').src.includes('channel=2')")

    target = page.query_selector("#pv-units .pv-unit")  # each of its units opens that unit
    channel = target.get_attribute("data-channel")
    target.click()
    page.wait_for_function(f"location.hash.includes('unit={channel}') && !location.hash.includes('image=')")
    page.wait_for_selector("#painting", state="hidden")
    page.wait_for_function(f"document.getElementById('detail-title').textContent.includes('channel {channel}')")
    page.wait_for_selector("#ex-grid[data-state=done]")
    assert errors == []


def test_a_deep_link_restores_the_painting_view(browser, site, index):
    layer = layer_of(index)
    image_id = index.examples(layer, 0, k=1)[0].image_id
    link = f"{site}/#{VIEW}&layer={layer}&unit=0&index=paintings-index&image={image_id}"
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    errors = watch(page)
    page.goto(link)
    page.wait_for_selector("#painting:not([hidden]) #pv-units .pv-unit")
    assert page.inner_text("#pv-title") == index.image(image_id).meta["title"]
    assert "channel=0" in page.get_attribute("#pv-img", "src")
    page.reload()
    page.wait_for_selector("#painting:not([hidden]) #pv-units .pv-unit")
    assert page.inner_text("#pv-title") == index.image(image_id).meta["title"]
    page.keyboard.press("Escape")  # closes the painting, back to the unit panel
    page.wait_for_selector("#painting", state="hidden")
    assert "image=" not in page.url and "unit=0" in page.url
    page.go_back()  # the browser's history brings it back
    page.wait_for_selector("#painting:not([hidden])")
    assert errors == []


def upload_from_a_unit(page, site, index, file) -> None:
    """Open unit 3 of the index's deepest layer, wait for its paintings, then pick *file* to explain."""
    page.goto(f"{site}/#{VIEW}&layer={layer_of(index)}&unit=3")
    page.wait_for_selector("#ex-grid[data-state=done]")
    page.set_input_files("#upload-file", str(file))


def test_pick_a_file_to_explain_your_own_painting(browser, site, index, tmp_path):
    file = tmp_path / "mine.png"
    painting(42).save(file)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = watch(page)
    upload_from_a_unit(page, site, index, file)
    page.wait_for_selector("#painting:not([hidden]) #pv-units .pv-unit")
    assert page.inner_text("#pv-title") == "Your painting"
    assert "upload=" in page.url
    assert "/api/uploads/" in page.get_attribute("#pv-img", "src")
    heat = page.query_selector("#pv-units .pv-heat").get_attribute("src")
    assert "/api/uploads/" in heat and "/overlay?" in heat
    page.wait_for_selector("#pv-similar .ex-card")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "collection-upload.png"))
    upload_link = page.url
    other = browser.new_page(viewport={"width": 1280, "height": 800})
    other.goto(upload_link)  # the upload's deep link works while the server keeps it
    other.wait_for_selector("#painting:not([hidden]) #pv-units .pv-unit")
    assert other.inner_text("#pv-title") == "Your painting"
    assert errors == []


def test_drop_a_file_on_the_page_to_explain_it(browser, site, index):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = watch(page)
    page.goto(f"{site}/#{VIEW}&layer={layer_of(index)}")
    page.wait_for_selector("#grid .card")
    page.evaluate("""async () => {
        const canvas = Object.assign(document.createElement('canvas'), {width: 40, height: 30});
        const ctx = canvas.getContext('2d'); ctx.fillStyle = '#a33'; ctx.fillRect(0, 0, 40, 30);
        const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
        const data = new DataTransfer();
        data.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
        for (const type of ['dragenter', 'dragover', 'drop']) {
          document.body.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
        }
    }""")
    page.wait_for_selector("#painting:not([hidden]) #pv-units .pv-unit")
    assert page.inner_text("#pv-title") == "Your painting"
    assert page.is_hidden("#dropzone")
    assert errors == []


def test_the_web_writes_percentiles_by_the_same_rule_as_the_pages_and_the_cli(browser):
    """collection.js's percentileLabel and imagemachines.index.records.percentile_label agree on every value,
    ties at the rounding edges included (one rule: '>99.9' just below the maximum, '100' only at it)."""
    import re

    import numpy as np

    from imagemachines.index.records import percentile_label
    from imagemachines.serve.app import STATIC

    source = (STATIC / "collection.js").read_text()
    [line] = re.findall(r"^const percentileLabel = .*$", source, re.M)
    values = [0, 1e-9, 0.04, 0.05, 0.25, 0.35, 12.25, 49.95, 99.9, 99.94, 99.949999, 99.95, 99.9999, 100, 100.5,
              -1, 2.5, 33.333333] + np.random.default_rng(0).uniform(0, 100, 300).round(4).tolist()
    page = browser.new_page()
    web = page.evaluate(f"(values) => {{ {line} return values.map(percentileLabel); }}", values)
    page.close()
    assert web == [percentile_label(v) for v in values]


def test_the_mode_switch_beside_the_similar_paintings(browser, site, index):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = watch(page)
    page.goto(f"{site}/#{VIEW}&layer={layer_of(index)}&image=3&index={index.path.name}")
    page.wait_for_selector("#painting:not([hidden]) #pv-similar .ex-card")
    assert page.input_value("#pv-sim") == "content" and "sim=" not in page.url
    assert "what they show" in page.inner_text("#pv-sim-note")
    by_content = [c.get_attribute("data-image-id") for c in page.query_selector_all("#pv-similar .ex-card")]
    page.select_option("#pv-sim", "style")
    page.wait_for_function("document.getElementById('pv-sim-note').textContent.includes('how they are painted')")
    page.wait_for_selector("#pv-similar .ex-card .pv-why")
    assert "sim=style" in page.url
    why = page.query_selector("#pv-similar .pv-why")  # style says which layers match, not units
    assert "statistics of" in why.get_attribute("title") and why.evaluate("e => e.tagName") == "SPAN"
    by_style = [c.get_attribute("data-image-id") for c in page.query_selector_all("#pv-similar .ex-card")]
    assert by_style != by_content
    page.select_option("#pv-sim", "composition")
    page.wait_for_selector("#pv-similar a.pv-why")  # composition: units, linked
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "collection-similar-modes.png"))
    page.click("#pv-similar a.pv-why")  # a reason opens its unit
    page.wait_for_selector("#painting", state="hidden")
    assert "unit=" in page.url
    page.go_back()
    page.wait_for_selector("#painting:not([hidden]) #pv-similar .ex-card")
    assert page.input_value("#pv-sim") == "composition"  # the deep link keeps the mode
    assert errors == []


def test_the_unit_panel_flags_a_border_unit_and_shows_each_photograph(browser, site, index):
    from imagemachines.index.unit_notes import photo_line, unit_notes

    layer = "features.3"
    flagged, calm = index.border_units(layer)[0], next(c for c in range(index.channels(layer))
                                                      if c not in index.border_units(layer))
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = watch(page)
    page.goto(f"{site}/#{VIEW}&layer={layer}&unit={flagged}")
    page.wait_for_selector("#ex-grid[data-state=done]")
    notes = unit_notes(index, layer, flagged)
    assert page.inner_text("#ex-border") == notes.border_text() and notes.border_text().startswith("Border unit")
    assert page.get_attribute("#ex-border", "class") == "ex-warn"
    assert "over the interior of its map" in page.inner_text("#ex-note")
    assert f"Holm's correction over {notes.tested} values" in page.inner_text("#ex-metadata")
    examples = index.examples(layer, flagged, k=12)
    photos = [p.inner_text() for p in page.query_selector_all("#ex-grid .ex-photo")]
    assert photos == [photo_line(index.image(e.image_id)) for e in examples] and "64 × 48 px" in photos
    assert page.query_selector_all("#ex-grid .ex-edge") == []  # ranked by the interior: no example on the border
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "collection-border-unit.png"))
    page.keyboard.press("Escape")
    page.goto(f"{site}/#{VIEW}&layer={layer}&unit={calm}")
    page.wait_for_function(f"document.getElementById('detail-title').textContent.includes('channel {calm}')")
    page.wait_for_selector("#ex-grid[data-state=done]")
    assert page.get_attribute("#ex-border", "class") == "ex-note"
    assert page.inner_text("#ex-border") == unit_notes(index, layer, calm).border_text()
    assert errors == []


def test_an_upload_the_server_is_too_busy_for_is_sent_again_after_its_retry_after(browser, site, index, tmp_path):
    import json
    import re

    file = tmp_path / "mine.png"
    painting(7).save(file)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = watch(page)
    answers: list[int] = []

    def busy_once(route):  # the first upload finds both decoders busy, as the server answers then
        if route.request.method == "POST" and not answers:
            answers.append(503)
            route.fulfill(status=503, headers={"Retry-After": "1", "Content-Type": "application/json"},
                          body=json.dumps({"detail": "The server is decoding 2 other uploads; try again in a moment.",
                                           "fault": "busy"}))
        else:
            answers.append(200)
            route.continue_()

    page.route(re.compile(r"/api/uploads\?"), busy_once)
    upload_from_a_unit(page, site, index, file)
    page.wait_for_function("document.getElementById('toast').textContent.includes('sending mine.png again in 1 s')")
    page.wait_for_selector("#painting:not([hidden]) #pv-units .pv-unit")
    assert answers == [503, 200] and "upload=" in page.url
    assert [e for e in errors if " 503 " not in e] == []
