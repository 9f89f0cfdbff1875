"""Headless Chromium drives accentuation in the interface: from a unit's paintings, a painting opened with its
accentuation for the unit growing beside it, the strength changed, the link that restores it, and cancelling."""

from __future__ import annotations

import pytest

from imagemachines.models import LOGITS
from imagemachines.serve.app import create_app
from imagemachines.serve.schemas import Limits
from tests.conftest import tiny_loaded_model
from tests.serve.browsing import BROWSER_MARKS
from tests.serve.collection_fixtures import build_tiny_index
from tests.serve.conftest import live_server

pytestmark = BROWSER_MARKS

VIEW = "model=tiny&method=lucid&size=64&steps=4&seed=0&grid=32"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return build_tiny_index(tmp_path_factory.mktemp("collection"))


@pytest.fixture
def site(tmp_path, spy, index):
    app = create_app({"tiny": tiny_loaded_model()}, cache_dir=tmp_path / "cache", render_fn=spy,
                     limits=Limits(max_size=96, max_steps=300), indexes=[index])
    with live_server(app) as base:
        yield base, app
    app.state.scheduler.close()


def watch(page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.request.method} {r.status} {r.url}")
            if r.status >= 400 and not (r.status == 409 and r.request.method == "DELETE") else None)
    return errors


def layer_of(index) -> str:
    return [name for name in index.layers if name != LOGITS][-1]


def accent_calls(spy) -> list[dict]:
    return [c for c in spy.calls if c["units"] and c["units"][0].startswith("AccentTarget")]


def test_a_painting_of_the_unit_is_accentuated_beside_it_and_the_link_restores_it(browser, site, index, spy):
    base, _app = site
    layer = layer_of(index)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = watch(page)
    page.goto(f"{base}/#{VIEW}&layer={layer}&unit=1")
    page.wait_for_selector("#ex-grid[data-state=done]", timeout=60_000)  # the first page of a loaded machine
    first = page.query_selector("#ex-grid .ex-card")
    image_id = int(first.get_attribute("data-image-id"))
    first.query_selector(".acc-card-btn").click()  # the card's own button: open the painting accentuated
    page.wait_for_selector("#painting:not([hidden]) #acc:not([hidden])")
    assert f"image={image_id}" in page.url and "acc=1" in page.url
    page.wait_for_selector("#acc-img[data-state=done]", timeout=60_000)
    status = page.inner_text("#acc-status")
    assert "→" in status and "strength 1" in status and "distance" in status
    page.wait_for_function("document.getElementById('acc-img').naturalWidth > 0")
    natural = page.evaluate("[document.getElementById('acc-img').naturalWidth, "
                            "document.getElementById('acc-img').naturalHeight]")
    assert natural == [32, 24]  # the painting's aspect (64×48), at the model's input size (32)
    assert page.get_attribute("#acc-download", "href").endswith("download=1")
    [call] = accent_calls(spy)
    assert call["size"] == 32 and f"layer='{layer}', channel=1" in call["units"][0]

    page.select_option("#acc-strength", "2")  # another strength: another accentuation, and the address says so
    page.wait_for_function("location.hash.includes('acc=2')")
    page.wait_for_function("document.getElementById('acc-status').textContent.includes('strength 2')",
                           timeout=60_000)
    url = page.url

    again = browser.new_page(viewport={"width": 1280, "height": 800})
    errors_again = watch(again)
    again.goto(url)  # a deep link: the same painting, unit and strength, straight from the cache
    again.wait_for_selector("#acc-img[data-state=done]", timeout=60_000)
    assert "strength 2" in again.inner_text("#acc-status")
    assert len(accent_calls(spy)) == 2

    page.click("#pv-close")  # closing the painting drops the accentuation from the address
    page.wait_for_function("!location.hash.includes('acc=')")
    assert page.is_hidden("#acc")
    assert errors == [] and errors_again == []


def test_a_running_accentuation_can_be_cancelled(browser, site, index, spy):
    base, app = site
    layer = layer_of(index)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = watch(page)
    image_id = index.examples(layer, 0, k=1)[0].image_id
    # the accentuation, not the renders: the unit's own render is 32 px too (the model's input size), and holding
    # it instead kept the accentuation waiting behind it (an order-dependent failure in a full run)
    spy.hold(at_step=1, only_size=32, only_units=lambda units: str(units[0]).startswith("AccentTarget"))
    view = VIEW.replace("grid=32", "grid=48")
    page.goto(f"{base}/#{view}&layer={layer}&unit=0&index=paintings-index&image={image_id}&acc=0.5")
    page.wait_for_selector("#acc-img[data-state=running]", timeout=60_000)
    page.click("#acc-cancel")
    page.wait_for_function("!location.hash.includes('acc=')")
    spy.release()
    page.wait_for_function("document.getElementById('acc-fig').hidden")
    scheduler = app.state.scheduler
    assert scheduler.counts()["cancelled"] >= 1 and scheduler.counts()["queued"] == 0
    assert errors == []
