"""The server under hostile or broken input: non-finite numbers, large bodies, foreign Host and Origin headers,
a full disk cache, many event streams, neurons outside the render, file modes. One test per promise in
docs/security.md."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
from fastapi import Request

from imagemachines.serve.schemas import Limits
from tests.serve.conftest import BASE_URL, FAST, wait_for


def body(channel: int = 3, **kw) -> dict:
    return {"model": "tiny", "layer": "features.2", "unit": channel, **FAST, **kw}


def raw(client, payload: str, path: str = "/api/renders", **headers):
    return client.post(path, content=payload, headers={"Content-Type": "application/json", **headers})


# -- 1. non-finite numbers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [
    '{"model": "tiny", "layer": "features.2", "unit": 1, "seed": NaN}',
    '{"model": "tiny", "layer": "features.2", "unit": {"channel": -Infinity}}',
    '{"model": "tiny", "layer": "features.2", "unit": 1, "size": Infinity, "steps": NaN}',
])
def test_non_finite_numbers_are_422_not_500(client, payload):
    r = raw(client, payload)
    assert r.status_code == 422 and "See /docs" in r.json()["detail"]
    assert all(set(e) == {"loc", "msg", "type"} for e in r.json()["errors"])  # the input is never echoed


# -- 2. request bodies ----------------------------------------------------------------------------------------
def test_a_large_body_is_413_before_it_is_parsed(client):
    big = json.dumps({**body(), "pad": "x" * 200_000})
    r = raw(client, big)
    assert r.status_code == 413 and len(r.content) < 200
    chunks = (big[i:i + 8192].encode() for i in range(0, len(big), 8192))  # no Content-Length: counted
    r = client.post("/api/renders", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "65,536 bytes" in r.json()["detail"]


def test_validation_errors_are_small_and_never_echo_the_input(client):
    many = json.dumps({**body(), **{f"k{i}": "v" * 20 for i in range(2000)}})  # < 64 KiB, 2000 bad keys
    assert len(many) < 64 * 1024
    r = raw(client, many)
    assert r.status_code == 422 and len(r.content) < 2000
    assert "(and 1995 more)" in r.json()["detail"] and "vvvv" not in r.text
    long_layer = raw(client, json.dumps(body(layer="L" * 5000)))
    assert long_layer.status_code == 422 and "LLLLLLLLLL" not in long_layer.text


def test_a_route_declares_a_larger_body_limit(make_client):
    client = make_client()

    @client.app.post("/api/test-upload", max_body_size=1_000_000)
    async def upload(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    assert client.post("/api/test-upload", content=b"x" * 500_000).json() == {"bytes": 500_000}
    assert client.post("/api/test-upload", content=b"x" * 1_000_001).status_code == 413
    assert client.post("/api/renders", content=b"x" * 500_000).status_code == 413


# -- 3. host names and other sites' pages ---------------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_foreign_host_names_are_refused(client, method):
    r = client.request(method, "/api/renders/" + "0" * 32, headers={"Host": "evil.example:8000"})
    assert r.status_code == 400 and "--allowed-host" in r.json()["detail"]
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
        assert client.get("/api/models", headers={"Host": host}).status_code == 200


def test_allowed_hosts_are_answered(make_client):
    client = make_client(allowed_hosts=("127.0.0.1", "studio.local"))
    assert client.get("/api/models", headers={"Host": "studio.local:8000"}).status_code == 200
    assert client.get("/api/models", headers={"Host": "localhost"}).status_code == 400
    assert make_client(allowed_hosts=("*",)).get("/api/models", headers={"Host": "any.example"}).status_code == 200


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # another port of this machine is another page
    {"Referer": "http://evil.example/page.html"},
])
def test_other_sites_cannot_change_or_queue_anything(client, headers, spy):
    assert raw(client, json.dumps(body()), **headers).status_code == 403
    grid = {"model": "tiny", "layer": "features.2", "units": [0, 1, 2]}
    assert client.post("/api/renders/batch", json=grid, headers=headers).status_code == 403
    assert client.delete("/api/renders/" + "0" * 32, headers=headers).status_code == 403
    seed = client.get("/activations/features.2/3/1", headers=headers)  # an <img src> on any page
    assert seed.status_code == 403 and "another site" in seed.json()["detail"]
    assert client.get("/api/models", headers=headers).status_code == 403  # reading too (every route: see below)
    assert client.get("/", headers=headers).status_code == 200  # a link on another site may open the interface
    assert spy.calls == [] and client.get("/api/status").json()["queued"] == 0


OTHER_SITES = [{"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
               {"Referer": "http://evil.example/page.html"}]
OPEN_PAGES = {"/", "/docs"}  # the pages a link on another site may open; everything else refuses its requests


def every_route(routes, prefix: str = ""):
    """(path, route) of every route, also inside included routers (FastAPI keeps those nested since 0.16x)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from every_route(inner.routes, prefix + route.include_context.prefix)
        else:
            yield prefix + getattr(route, "path", "?"), route


def test_every_route_refuses_other_sites_pages_unless_it_is_a_page_they_may_link_to(client, spy):
    """Enumerates every route of the app (collection routes, and whatever routers are added later): each one
    that is not declared open_to_other_sites answers 403 to another site's page, whatever it does."""
    from fastapi import APIRouter
    from fastapi.routing import APIRoute

    from imagemachines.serve.guard import is_open_to_other_sites

    later = APIRouter()  # a router included after the app was made, as a new serve/NAME_api.py would be
    later.add_api_route("/api/later/{thing}", lambda thing: {"thing": thing})
    client.app.include_router(later)
    routes = [(path, r) for path, r in every_route(client.app.routes) if isinstance(r, APIRoute)]
    others = {path for path, r in every_route(client.app.routes) if not isinstance(r, APIRoute)}
    assert others == {"/openapi.json", "/static"}  # the schema and the static files: no computing, no ids
    assert {path for path, r in routes if is_open_to_other_sites(r)} == OPEN_PAGES
    assert {"/api/later/{thing}", "/api/uploads", "/api/uploads/{upload_id}/overlay", "/api/renders/{render_id}",
            "/api/indexes/{index_id}/images/{image_id}/overlay", "/activations/{layer}/{neuron}/{octave}"} <= \
        {path for path, _r in routes}
    checked = 0
    for template, route in routes:
        path = re.sub(r"\{[^}]+\}", "1", template)
        for method in route.methods:
            for headers in OTHER_SITES:
                r = client.request(method, path, headers=headers)
                if template in OPEN_PAGES:
                    assert r.status_code == 200, (method, template, headers)
                else:
                    assert r.status_code == 403 and r.json()["fault"] == "request", (method, template, headers)
                    checked += 1
    assert checked >= 3 * 20 and spy.calls == []


def test_own_pages_scripts_and_allowed_origins_pass(make_client):
    client = make_client(allow_origins=("http://gallery.example",))
    own = [{"Origin": BASE_URL}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {},
           {"Referer": f"{BASE_URL}/#model=tiny"}, {"Origin": "http://gallery.example"}]
    for n, headers in enumerate(own):
        assert raw(client, json.dumps(body(n)), **headers).status_code == 202, headers


# -- 4. the disk cache is bounded -----------------------------------------------------------------------------
def test_the_render_cache_keeps_within_its_bound_dropping_the_least_recently_used(make_client, tmp_path):
    client = make_client(limits=Limits(max_size=128, max_steps=64, max_cache_bytes=9000))
    ids = []
    for c in range(6):
        ids.append(client.post("/api/renders", json=body(c)).json()["id"])
        wait_for(client, ids[-1])
        client.get(f"/api/renders/{ids[0]}/image")  # the first render stays in use
    status = client.get("/api/status").json()
    assert 0 < status["cache_bytes"] <= status["cache_limit"] == 9000
    kept = {p.name[:32] for p in (tmp_path / "cache").glob("*.png")}
    assert ids[0] in kept and ids[-1] in kept and ids[1] not in kept and status["cache_renders"] == len(kept) < 6
    assert sum(p.stat().st_size for p in (tmp_path / "cache").iterdir()) == status["cache_bytes"]
    again = client.post("/api/renders", json=body(1))  # an evicted render is rendered anew
    assert again.status_code == 202 and wait_for(client, ids[1])["state"] == "done"


def test_a_restarted_server_finds_the_cache_size_and_trims_it(make_client, tmp_path):
    first = make_client()
    for c in range(3):
        wait_for(first, first.post("/api/renders", json=body(c)).json()["id"])
    total = first.get("/api/status").json()["cache_bytes"]
    second = make_client(limits=Limits(max_size=128, max_steps=64, max_cache_bytes=total // 2))
    assert 0 < second.get("/api/status").json()["cache_bytes"] <= total // 2


# -- 5. event streams are bounded -----------------------------------------------------------------------------
def test_event_streams_beyond_the_bound_get_503_with_retry_after(make_client, spy):
    client = make_client(limits=Limits(max_size=128, max_steps=64, max_streams=2))
    spy.hold()
    rid = client.post("/api/renders", json=body()).json()["id"]
    with client.stream("GET", f"/api/renders/{rid}/events") as one, \
            client.stream("GET", f"/api/renders/{rid}/events") as two:
        assert one.status_code == two.status_code == 200
        assert client.get("/api/status").json()["streams"] == 2
        try:
            with client.stream("GET", f"/api/renders/{rid}/events") as third:
                assert third.status_code == 503 and third.headers["retry-after"] == "5"
        finally:
            spy.release()
        for stream in (one, two):
            assert "event: done" in "".join(stream.iter_text())
    assert client.get("/api/status").json()["streams"] == 0  # slots come back when streams end
    with client.stream("GET", f"/api/renders/{rid}/events") as four:
        assert four.status_code == 200


# -- 6. neurons are checked at the size asked for -------------------------------------------------------------
def test_neuron_positions_are_checked_at_the_render_size(client):
    # features.1 halves the image: 8x8 at 16 px, 32x32 at 64 px (the model's own input size is 32 px)
    small = client.post("/api/renders", json=body(layer="features.1", unit={"channel": 0, "x": 0, "y": 8}, size=16))
    assert small.status_code == 422 and "8×8 for 16-px images" in small.json()["detail"]
    large = client.post("/api/renders", json=body(layer="features.1", unit={"channel": 0, "x": 20, "y": 31}, size=64))
    assert large.status_code == 202 and wait_for(client, large.json()["id"])["state"] == "done"


# -- 7. one file mode for the cache ---------------------------------------------------------------------------
def test_every_cache_file_is_private(client, tmp_path):
    wait_for(client, client.post("/api/renders", json=body()).json()["id"])
    modes = {p.name.split(".", 1)[1]: stat.S_IMODE(os.stat(p).st_mode) for p in (tmp_path / "cache").iterdir()}
    assert modes == {"png": 0o600, "json": 0o600, "request.json": 0o600}


def test_every_answer_forbids_framing_inline_code_and_embedding_by_other_sites(client):
    from io import BytesIO

    from PIL import Image

    rid = client.post("/api/renders", json=body(2)).json()["id"]
    wait_for(client, rid)
    buf = BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 40)).save(buf, format="PNG")
    upload = client.post("/api/uploads", content=buf.getvalue(), params={"layer": "features.2", "k": 2}).json()
    answers = [client.get(url) for url in (
        "/", "/docs", "/static/app.js", "/static/swagger-ui/swagger-ui-bundle.js", "/openapi.json", "/api/config",
        f"/api/renders/{rid}/image", upload["image"], upload["units"][0]["overlay"], "/no/such/page")]
    answers += [client.get("/api/config", headers={"Host": "evil.example"}),  # the guard's own refusals too
                client.post("/api/renders", json=body(), headers={"Origin": "http://evil.example"})]
    assert [a.status_code for a in answers] == [200] * 9 + [404, 400, 403]
    assert {a.headers["content-type"].split(";")[0] for a in answers[6:9]} == {"image/png", "image/jpeg"}
    for a in answers:
        csp = dict(part.strip().split(" ", 1) for part in a.headers["content-security-policy"].split(";"))
        assert csp["frame-ancestors"] == "'none'" and a.headers["x-frame-options"] == "DENY", a.url
        assert csp["script-src"] == csp["style-src"] == "'self'" and "unsafe" not in str(csp)  # no inline code
        assert a.headers["cross-origin-resource-policy"] == "same-origin", a.url  # no <img> on other sites
        assert a.headers["x-content-type-options"] == "nosniff"


def test_the_api_docs_come_from_the_package_with_their_licence():
    from pathlib import Path

    import imagemachines.serve.app as app_module

    static = Path(app_module.__file__).parent / "static"
    page = (static / "docs.html").read_text()
    assert "<script>" not in page and "http" not in page  # no inline script, nothing from elsewhere
    assert re.findall(r'src="([^"]+)"', page) == ["/static/swagger-ui/swagger-ui-bundle.js", "/static/docs.js"]
    vendored = static / "swagger-ui"
    version = (vendored / "VERSION").read_text()
    assert version.startswith("swagger-ui-dist 5.") and "Apache-2.0" in version
    import hashlib

    for line in version.splitlines()[1:]:  # every file as published (scripts/vendor_swagger_ui.sh)
        digest, name = line.split()
        assert hashlib.sha256((vendored / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (vendored / "LICENSE").read_text()
