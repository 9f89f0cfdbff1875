"""The view switcher (static/views.js) in Chromium: a registered view takes the screen from the units grid
when the hash names it, gets the hash's parameters, and the Units link brings the grid back as it was."""

from __future__ import annotations

import pytest

from imagemachines.serve.app import create_app
from imagemachines.serve.schemas import Limits
from tests.conftest import tiny_loaded_model
from tests.serve.browsing import BROWSER_MARKS
from tests.serve.conftest import live_server

pytestmark = BROWSER_MARKS

DEMO = """() => {
  const section = document.createElement("section");
  section.id = "view-demo"; section.className = "view"; section.hidden = true; section.textContent = "demo view";
  document.body.insertBefore(section, document.querySelector("footer"));
  const link = document.createElement("a");
  link.dataset.view = "demo"; link.href = "#view=demo"; link.hidden = true; link.textContent = "Demo";
  document.getElementById("views").append(link);
  window.demoCalls = [];
  Views.register("demo", { show: (p) => demoCalls.push(["show", p.x || ""]), hide: () => demoCalls.push(["hide"]) });
}"""


@pytest.fixture
def site(tmp_path, spy):
    app = create_app({"tiny": tiny_loaded_model()}, cache_dir=tmp_path / "cache", render_fn=spy,
                     limits=Limits(max_size=96, max_steps=32))
    with live_server(app) as base:
        yield base
    app.state.scheduler.close()


def test_a_view_takes_the_screen_and_the_units_link_brings_the_grid_back(browser, site):
    page = browser.new_page(viewport={"width": 1200, "height": 760})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{site}/#model=tiny&layer=features.1&steps=8&grid=32")
    page.wait_for_function("document.querySelectorAll('#grid .card').length === 16")
    assert page.is_hidden("#views")  # only the grid: no switcher until a second view registers
    grid_hash = page.evaluate("location.hash")

    page.evaluate(DEMO)
    assert page.is_visible("#views a[data-view=demo]") and page.is_visible("#views a[data-view=units]")
    page.click("#views a[data-view=demo]")
    page.wait_for_selector("#view-demo", state="visible")
    assert page.is_hidden("#main")
    assert page.get_attribute("#views a[data-view=demo]", "aria-current") == "page"
    assert page.evaluate("document.body.dataset.view") == "demo"

    page.evaluate("location.hash = '#view=demo&x=7'")  # a deep link inside the view reaches it again
    page.wait_for_function("demoCalls.length === 2")
    assert page.evaluate("demoCalls") == [["show", ""], ["show", "7"]]
    assert page.evaluate("location.hash") == "#view=demo&x=7"  # the grid did not rewrite the address

    assert page.get_attribute("#views a[data-view=units]", "href") == grid_hash
    page.click("#views a[data-view=units]")
    page.wait_for_selector("#main", state="visible")
    assert page.is_hidden("#view-demo")
    assert page.evaluate("location.hash") == grid_hash
    assert page.evaluate("demoCalls.at(-1)") == ["hide"]
    assert page.input_value("#layer") == "features.1"
    assert page.locator("#grid .card").count() == 16
    page.go_back()  # history: back into the view
    page.wait_for_selector("#view-demo", state="visible")
    assert errors == []
