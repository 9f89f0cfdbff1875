"""A real headless Chromium drives the web interface: load, pick a layer, open a unit, watch it fill in."""

from __future__ import annotations

import re

import pytest

from imagemachines.serve.app import create_app
from imagemachines.serve.schemas import Limits
from tests.conftest import tiny_loaded_model
from tests.serve.browsing import ARTIFACTS, BROWSER_MARKS
from tests.serve.conftest import live_server

pytestmark = BROWSER_MARKS


@pytest.fixture
def site(tmp_path, spy):
    app = create_app({"tiny": tiny_loaded_model()}, cache_dir=tmp_path / "cache", render_fn=spy,
                     limits=Limits(max_size=96, max_steps=32))
    with live_server(app) as base:
        yield base
    app.state.scheduler.close()


def test_pick_a_layer_open_a_unit_and_watch_it_fill_in(browser, site, spy):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # superseded preview images and closed event streams are aborted by design; anything else is an error
    page.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "") else errors.append(
        f"{r.url} {r.failure}"))
    page.goto(f"{site}/#steps=12&grid=32&size=96")
    page.wait_for_selector("#layer option", state="attached")
    page.select_option("#layer", "features.1")
    page.wait_for_function("document.querySelectorAll('#grid .card').length === 16")
    page.wait_for_selector(".card[data-state=done] img.shown", timeout=20_000)  # thumbnails render in view
    assert "features.1" in page.inner_text("#layer-info")

    spy.hold(at_step=1, only_size=96)  # stop the large render after its first step: a preview must show
    page.click(".card[data-index='5']")
    page.wait_for_selector("#detail-img[data-state=running]", timeout=20_000)
    page.wait_for_function("document.getElementById('detail-img').naturalWidth === 96")
    assert "step" in page.get_attribute("#detail-img", "src")
    assert "Rendering" in page.inner_text("#detail-status")
    spy.release()
    page.wait_for_selector("#detail-img[data-state=done]", timeout=20_000)
    page.wait_for_function("document.getElementById('detail-img').complete")
    assert re.search(r"activation \d", page.inner_text("#detail-status"))
    assert "features.1:5" in page.inner_text("#recipe")
    assert page.get_attribute("#download", "aria-disabled") == "false"
    assert "unit=5" in page.url and "layer=features.1" in page.url
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve.png"))

    page.keyboard.press("ArrowRight")  # keyboard navigation: the next unit, with its own address
    page.wait_for_function("location.hash.includes('unit=6')")
    assert page.inner_text("#detail-title").startswith("features.1 · channel 6")
    page.wait_for_selector("#detail-img[data-state=done]", timeout=20_000)
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")
    assert errors == []


def test_a_deep_link_opens_the_same_view(browser, site):
    link = f"{site}/#model=tiny&layer=logits&unit=3&method=lucid&size=64&steps=8&seed=4&grid=32"
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.goto(link)
    page.wait_for_selector("#detail-img[data-state=done]", timeout=20_000)
    title = page.inner_text("#detail-title")
    assert "logits · class 3" in title and "class3" in title  # class names come from the model
    recipe = page.inner_text("#recipe")
    assert re.search(r"seed\s+4", recipe) and re.search(r"size\s+64", recipe)
    assert page.input_value("#seed") == "4" and page.input_value("#layer") == "logits"
    assert page.url == link  # the address stays exactly what was shared
    first = page.get_attribute("#detail-img", "src")
    page.reload()
    page.wait_for_selector("#detail-img[data-state=done]", timeout=20_000)
    assert page.get_attribute("#detail-img", "src") == first  # same address, same render (from the cache)


WHERE = """() => {
  const box = document.getElementById('gallery').getBoundingClientRect();
  const out = {visible: [], near: [], far: []};
  for (const c of document.querySelectorAll('#grid .card')) {
    const r = c.getBoundingClientRect();
    const i = Number(c.dataset.index);
    if (r.bottom > box.top && r.top < box.bottom) out.visible.push(i);
    else if (r.bottom > box.top - 150 && r.top < box.bottom + 150) out.near.push(i);
    else out.far.push(i);
  }
  return out;
}"""


def test_the_screen_s_thumbnails_are_asked_for_together_then_the_cards_just_below(browser, site, spy):
    page = browser.new_page(viewport={"width": 900, "height": 420})
    batches: list[str] = []
    page.on("request", lambda r: batches.append(r.post_data) if r.url.endswith("/api/renders/batch") else None)
    spy.hold(heed_stop=False)
    page.goto(f"{site}/#layer=features.3&steps=4&grid=96")
    page.wait_for_function("document.querySelectorAll('#grid .card').length === 24")
    assert spy.entered.wait(20)
    where = page.evaluate(WHERE)
    assert where["visible"] and where["near"] and where["far"], where  # the viewport shows part of the grid
    assert spy.calls[0]["units"] == [f"features.3:{i}" for i in where["visible"]]  # one engine call for them all
    spy.release()
    page.wait_for_function(f"[{','.join(map(str, where['near']))}].every(i => "
                           "document.querySelector(`.card[data-index='${i}']`).dataset.state === 'done')",
                           timeout=20_000)
    asked = {u for call in spy.calls for u in call["units"]}
    assert asked == {f"features.3:{i}" for i in where["visible"] + where["near"]}  # nothing far below yet
    import json

    assert json.loads(batches[0])["units"] == where["visible"]
    page.close()
