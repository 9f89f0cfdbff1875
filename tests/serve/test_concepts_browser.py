"""Headless Chromium drives the Concepts view: choose a class, find its concepts (computed on the server while
the page follows the progress), open a concept with its crops and maps, follow a crop to its painting, and come
back through a deep link."""

from __future__ import annotations

import pytest

from imagemachines.serve.app import create_app
from imagemachines.serve.schemas import Limits
from tests.concepts.conftest import colour_model, make_paintings
from tests.serve.browsing import ARTIFACTS, BROWSER_MARKS
from tests.serve.conftest import live_server
from tests.serve.test_browser_resilience import CSP_WATCH
from tests.serve.test_collection_browser import watch

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def colour_index(tmp_path_factory):
    from imagemachines.index import build_index, open_index

    root = tmp_path_factory.mktemp("colours")
    painted = make_paintings(root / "paintings", n=4)
    return open_index(build_index(colour_model(), painted.root, root / "colours-index", k=4, progress=False))


@pytest.fixture
def site(tmp_path, spy, colour_index):
    app = create_app({"colournet": colour_model()}, cache_dir=tmp_path / "cache", render_fn=spy,
                     limits=Limits(max_size=96, max_steps=32), indexes=[colour_index])
    with live_server(app) as base:
        yield base
    app.state.scheduler.close()


def all_loaded(selector: str) -> str:
    return (f"(() => {{ const imgs = [...document.querySelectorAll('{selector}')]; "
            "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); })()")


def test_open_a_class_find_its_concepts_open_one_and_follow_a_crop(browser, site):
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.add_init_script(CSP_WATCH)  # the server's Content-Security-Policy: no inline styles or scripts in the view
    errors = watch(page)
    page.goto(f"{site}/#model=colournet&layer=features.2")
    page.wait_for_selector("#views a[data-view=concepts]", state="visible")
    page.click("#views a[data-view=concepts]")
    page.wait_for_selector("#view-concepts", state="visible")
    assert page.is_hidden("#main")
    page.wait_for_selector(".cx-class[data-name=red]")
    assert page.inner_text("#cx-classes").split() == ["red", "4", "blue", "4"]

    page.click(".cx-class[data-name=red]")
    page.wait_for_selector("#cx-start")
    assert "view=concepts" in page.url and "class=red" in page.url
    page.fill("#cx-k", "2")
    page.dispatch_event("#cx-k", "change")
    page.wait_for_function("location.hash.includes('k=2')")
    page.click("#cx-start")
    page.wait_for_selector(".cx-row", timeout=120_000)  # the progress bar was shown while the server worked
    rows = page.query_selector_all(".cx-row")
    assert len(rows) == 2 and "Sobol 0.99" in rows[0].inner_text()
    page.wait_for_function(all_loaded(".cx-row .cx-crops-small img"))
    assert page.is_visible(".cx-class[data-name=red] .cx-badge")

    rows[0].click()
    page.wait_for_selector("#cx-detail[data-rank='1']")
    assert "concept=1" in page.url
    page.wait_for_function(all_loaded("#cx-detail .cx-crops img"))
    page.wait_for_function(all_loaded("#cx-detail .cx-maps img"))
    assert len(page.query_selector_all("#cx-detail .cx-crops .cx-fig")) == 4
    assert len(page.query_selector_all("#cx-detail .cx-collection .cx-fig")) == 4  # red is only in red paintings
    assert page.evaluate("window.__csp || []") == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "concepts-view.png"))
    deep = page.url

    page.click("#cx-detail .cx-crops .cx-fig a")  # a crop opens its painting in the collection view
    page.wait_for_selector("#main", state="visible")
    page.wait_for_function("location.hash.includes('image=') && location.hash.includes('index=colours-index')")

    fresh = browser.new_page(viewport={"width": 1360, "height": 900})  # the deep link restores class and concept
    more = watch(fresh)
    fresh.goto(deep)
    fresh.wait_for_selector("#cx-detail[data-rank='1']", timeout=30_000)
    assert fresh.is_visible(".cx-class.active[data-name=red]")
    assert errors == [] and more == []


def test_a_slower_look_up_never_undoes_a_started_study(browser, site):
    """Changing K looks the class's study up (GET); a click on "find concepts" before that answer arrives starts
    one (POST). The look-up's late answer ("no study yet") must not replace the started study, or the page stops
    following it and its concepts never appear (seen once in a full suite run)."""
    import re

    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors = watch(page)
    held = []
    page.route(re.compile(r".*/concepts/blue\?concepts=3&seed=0$"), lambda route: held.append(route))
    page.goto(f"{site}/#view=concepts&class=blue")
    page.wait_for_selector("#cx-start")
    page.fill("#cx-k", "3")
    page.dispatch_event("#cx-k", "change")
    page.wait_for_function("location.hash.includes('k=3')")
    for _ in range(100):   # the look-up of k=3 is asked and held back
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page did not look the study up"
    page.click("#cx-start")
    page.wait_for_selector(".cx-progress, .cx-row", timeout=30_000)  # the started study is followed
    for route in held:  # now the look-up answers what the server said when it was asked: no study with k=3 yet
        route.fulfill(status=200, content_type="application/json", body="null")
    page.wait_for_selector(".cx-row", timeout=120_000)
    assert len(page.query_selector_all(".cx-row")) == 3
    assert errors == []
