"""Headless Chromium: failed renders say why and can be retried (a server fault once by itself), the header says
when the render processes are warming up, a link from elsewhere renders nothing beyond the defaults until the user
acts, no other site can frame the interface, and no view breaks the Content-Security-Policy."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imagemachines.errors import UserError
from imagemachines.serve.app import create_app
from imagemachines.serve.schemas import Limits
from imagemachines.vis import render
from tests.conftest import tiny_loaded_model
from tests.serve.browsing import ARTIFACTS, BROWSER_MARKS
from tests.serve.collection_fixtures import build_tiny_index, painting
from tests.serve.conftest import live_server

pytestmark = BROWSER_MARKS

GRID = "model=tiny&layer=features.1&method=lucid&size=64&steps=4&seed=0&grid=32"  # 16 cards, all on screen
CSP_WATCH = """document.addEventListener('securitypolicyviolation', (e) => {
  (window.__csp = window.__csp || []).push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});"""


class Engine:
    """The real render(), failing as told: *faults* is a list of what each call raises (None: renders)."""

    def __init__(self, faults=()):
        self.faults = list(faults)
        self.calls: list[list[str]] = []
        self.bad_units: set[str] = set()
        self.ready = (0, 0)

    def __call__(self, model, units, **kw):
        self.calls.append([str(u) for u in units])
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            raise fault
        bad = [str(u) for u in units if str(u) in self.bad_units]
        if bad:
            raise UserError(f"{bad[0]} cannot be rendered (a test's bad unit).")
        return render(model, units, **kw)

    def readiness(self):  # as RenderProcesses reports it
        return self.ready


@pytest.fixture
def serve(tmp_path):
    apps = []

    def start(engine, **kw):
        kw.setdefault("limits", Limits(max_size=96, max_steps=32))
        app = create_app({"tiny": tiny_loaded_model()}, cache_dir=tmp_path / f"cache{len(apps)}", render_fn=engine,
                         **kw)
        apps.append(app)
        return app

    servers = []

    def live(engine, **kw):
        context = live_server(start(engine, **kw))
        servers.append(context)
        return context.__enter__()

    yield live
    for context in servers:
        context.__exit__(None, None, None)
    for app in apps:
        app.state.scheduler.close()


BUG = TypeError("'module' object is not callable")  # issue 18: how a fresh server's first renders failed


def every_card(state: str) -> str:
    """A page condition: the grid's 16 cards are all in *state*."""
    return ("(() => { const cs = [...document.querySelectorAll('#grid .card')]; "
            f"return cs.length === 16 && cs.every(c => c.dataset.state === '{state}'); }})()")


def test_a_server_fault_is_retried_once_by_itself_and_the_cards_fill_in(browser, serve):
    engine = Engine(faults=[BUG])  # the first engine call fails, as on a server just started with the bug
    base = serve(engine)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{base}/#{GRID}")
    page.wait_for_function(every_card("done"), timeout=30_000)
    assert len(engine.calls) == 2 and sorted(engine.calls[0]) == sorted(engine.calls[1])  # the same cards again
    assert page.query_selector(".card .why") is None


def test_a_failed_card_says_why_and_offers_a_retry(browser, serve):
    engine = Engine(faults=[BUG, BUG])  # fails again after the one retry of its own
    base = serve(engine)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{base}/#{GRID}")
    page.wait_for_function(every_card("failed"), timeout=30_000)
    assert len(engine.calls) == 2  # once, then once more by itself: no more
    why = page.inner_text(".card[data-index='0'] .why")
    assert "TypeError: 'module' object is not callable" in why and "fault of the server" in why
    assert "smaller" not in why and page.is_visible(".card[data-index='0'] .why button.retry")
    page.click(".card[data-index='0'] .why button.retry")  # the user asks again: now it renders
    page.wait_for_selector(".card[data-index='0'][data-state=done] img.shown", timeout=30_000)
    assert page.query_selector(".card[data-index='0'] .why") is None
    assert page.is_hidden("#detail")  # the retry is not a click on the card
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-failed-cards.png"))


def test_a_failure_the_request_caused_is_not_retried_by_itself(browser, serve):
    engine = Engine()
    engine.bad_units = {"features.1:3"}  # a unit the request cannot have (the engine says so: a UserError)
    base = serve(engine)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{base}/#{GRID}")
    page.wait_for_selector(".card[data-index='3'] .why", timeout=30_000)
    assert "features.1:3 cannot be rendered" in page.inner_text(".card[data-index='3'] .why")
    with_it = [call for call in engine.calls if "features.1:3" in call]
    assert len(with_it) == 2 and with_it[1] == ["features.1:3"]  # its batch, then alone (the scheduler): no more
    page.wait_for_function(every_card("done").replace("cs.every(c =>", "cs.every(c => c.dataset.index === '3' ||"))
    assert page.get_attribute(".card[data-index='3']", "data-state") == "failed"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-failed-card.png"))


def test_the_detail_pane_retries_a_server_fault_once_then_says_why_with_a_retry(browser, serve):
    engine = Engine()
    base = serve(engine)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{base}/#{GRID}")
    page.wait_for_function(every_card("done"), timeout=30_000)
    before = len(engine.calls)
    engine.faults = [BUG, BUG]
    page.click(".card[data-index='5']")  # a 64 px render: not one of the 32 px thumbnails
    page.wait_for_selector("#detail-status .retry", timeout=30_000)
    assert len(engine.calls) == before + 2  # once by itself
    assert "fault of the server" in page.inner_text("#detail-status")
    page.click("#detail-status .retry")
    page.wait_for_selector("#detail-img[data-state=done]", timeout=30_000)
    assert len(engine.calls) == before + 3


def test_the_header_says_warming_up_while_the_render_processes_start(browser, serve):
    engine = Engine()
    engine.ready = (0, 2)
    base = serve(engine)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{base}/#{GRID}")
    page.wait_for_function("document.getElementById('queue').textContent.startsWith('warming up')", timeout=20_000)
    assert "0 of 2 ready" in page.get_attribute("#queue", "title")
    engine.ready = (2, 2)
    page.wait_for_function("document.getElementById('queue').textContent === 'idle'", timeout=20_000)


def test_a_link_from_elsewhere_renders_nothing_beyond_the_defaults_until_the_user_acts(browser, serve):
    engine = Engine()
    base = serve(engine, limits=Limits())  # the CLI's limits: 1024 px, 4096 steps
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    posted: list[dict] = []
    page.on("request", lambda r: posted.append(json.loads(r.post_data)) if r.method == "POST" else None)
    page.goto(f"{base}/#model=tiny&layer=features.2&unit=7&method=lucid&size=1024&steps=4096&seed=0&grid=128")
    page.wait_for_selector("#link-gate:not([hidden])")
    text = page.inner_text("#link-gate")
    assert "a 1024 px image, 4096 steps, 128 px thumbnails" in text and "Render" in text
    page.wait_for_selector("#detail-img[data-state=done]", timeout=60_000)  # unit 7 at the defaults meanwhile
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-link-gate.png"))
    assert posted and all(b.get("size", 0) <= 224 and b.get("steps", 0) <= 256 for b in posted), posted
    assert {b["size"] for b in posted} == {64, 224} and "size=224" in page.url and "grid=64" in page.url
    count = len(posted)
    page.click("#link-gate-render")  # the user acts: now the link's own settings
    page.wait_for_selector("#detail-status >> text=/Queued|Rendering/", timeout=30_000)
    assert page.is_hidden("#link-gate") and "size=1024" in page.url and "grid=128" in page.url
    page.wait_for_function(f"performance.getEntriesByName('{base}/api/renders/batch').length >= 2")
    large = posted[count:]
    assert any(b.get("size") == 1024 and b.get("steps") == 4096 for b in large), large
    assert any(b.get("size") == 128 for b in large), large  # the thumbnails as linked too
    page.close()  # withdraws the large render


@contextmanager
def other_site(html: str):
    """Another origin on this machine (another port) serving *html*: what a page elsewhere would be, without
    Chromium's own refusal of public pages framing loopback ones getting in the way."""
    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_another_site_cannot_frame_the_interface(browser, serve):
    engine = Engine()
    base = serve(engine, limits=Limits())
    page = browser.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    link = f"{base}/#model=tiny&layer=features.2&unit=7&size=1024&steps=4096&grid=128"
    with other_site(f'<iframe src="{link}"></iframe>') as evil:
        page.goto(evil)
        page.wait_for_load_state("load")
        frame = page.frames[1]
        assert frame.url.startswith("chrome-error://")  # refused: frame-ancestors 'none', X-Frame-Options DENY
    assert [u for u in asked if u.startswith(base)] == [f"{base}/"]  # the page only: no script ran, no API call
    assert engine.calls == []


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return build_tiny_index(tmp_path_factory.mktemp("collection"))


def test_no_view_breaks_the_content_security_policy(browser, serve, index, tmp_path):
    engine = Engine()
    base = serve(engine, indexes=[index])
    layer = [name for name in index.layers if name != "logits"][-1]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.add_init_script(CSP_WATCH)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    violations: list[str] = []

    def check(view: str) -> None:
        violations.extend(f"{view}: {v}" for v in page.evaluate("window.__csp || []"))

    page.goto(f"{base}/#{GRID}&unit=2")  # the grid and a unit
    page.wait_for_selector("#detail-img[data-state=done]", timeout=30_000)
    check("unit")
    page.goto(f"{base}/#{GRID.replace('features.1', layer)}&unit=1&index={index.path.name}")  # its paintings
    page.wait_for_selector("#ex-grid[data-state=done]", timeout=30_000)
    check("examples")
    page.click("#ex-grid .ex-card >> nth=0")  # a painting opened
    page.wait_for_selector("#painting:not([hidden])", timeout=30_000)
    check("painting")
    upload = tmp_path / "mine.png"
    painting(3).save(upload)
    page.set_input_files("#upload-file", str(upload))  # an upload explained
    page.wait_for_function("location.hash.includes('upload=')", timeout=30_000)
    page.wait_for_selector("#painting:not([hidden])", timeout=30_000)
    check("upload")
    page.goto(f"{base}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    page.click(".opblock-summary >> nth=0")
    check("docs")
    assert violations == [] and not [e for e in errors if "Content Security Policy" in e], (violations, errors)
    page.evaluate("""() => {  // the watch itself works: an inline script is refused, and reported
      const s = document.createElement('script'); s.textContent = 'window.inline = 1'; document.body.append(s); }""")
    page.wait_for_function("(window.__csp || []).length === 1")
    assert page.evaluate("window.inline") is None and "script-src" in page.evaluate("window.__csp[0]")
