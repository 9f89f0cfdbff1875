"""The collection API on the tiny model and a generated collection indexed in the test: a unit's paintings, a
painting's page, thumbnails and heat overlays, uploads, and every kind of bad request."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from imagemachines.errors import UserError
from imagemachines.index import open_index
from imagemachines.models import LOGITS
from imagemachines.serve.app import create_app
from imagemachines.serve.uploads import UploadLimits
from tests.conftest import tiny_loaded_model
from tests.index.conftest import blob_model
from tests.index.untrusted import KINDS, built, secret, tamper
from tests.serve.collection_fixtures import N_PAINTINGS, build_tiny_index, painting

__all__ = ["built", "secret"]  # fixtures


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return build_tiny_index(tmp_path_factory.mktemp("collection"))


@pytest.fixture
def api(make_client, index):
    return make_client(indexes=[index])


def deepest(index) -> str:
    return [name for name in index.layers if name != LOGITS][-1]


def picture(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    return Image.open(BytesIO(response.content)).convert("RGB")


def png_bytes(image: Image.Image) -> bytes:
    buf = BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_the_index_is_listed_with_its_model_and_layers(api, index):
    [listed] = api.get("/api/indexes").json()
    assert listed["id"] == "paintings-index"
    assert (listed["model"], listed["weights_id"]) == ("tiny", "tiny-seed0")
    assert listed["n_images"] == N_PAINTINGS + 1 and listed["folder"].endswith("/images")
    assert [layer["name"] for layer in listed["layers"]] == list(index.layers)


def test_a_units_examples_are_the_indexs_paintings_with_their_pictures(api, index):
    layer = deepest(index)
    body = api.get(f"/api/indexes/paintings-index/units/{layer}/1", params={"k": 3}).json()
    expected = index.examples(layer, 1, k=3)
    assert [e["image_id"] for e in body["examples"]] == [e.image_id for e in expected]
    assert [e["value"] for e in body["examples"]] == pytest.approx([e.value for e in expected])
    assert body["stats"]["max"] == pytest.approx(index.stats(layer, 1).max)
    first = body["examples"][0]
    info = index.image(first["image_id"])
    assert first["path"] == info.path
    assert first["meta"]["title"] == info.meta["title"] and first["meta"]["date"] == info.meta["year"]
    # the thumbnail is that painting: same colours as its file, longer side as asked
    thumb = picture(api.get(first["links"]["thumb"], params={"size": 64}))
    assert max(thumb.size) == 64
    original = Image.open(index.image_file(first["image_id"])).convert("RGB").resize(thumb.size)
    assert np.abs(np.asarray(thumb, float) - np.asarray(original, float)).mean() < 12
    overlay = picture(api.get(first["links"]["overlay"] + "&size=64"))
    assert overlay.size == thumb.size
    assert np.abs(np.asarray(overlay, float) - np.asarray(thumb, float)).mean() > 5  # the heat is drawn on it

    bottom = api.get(f"/api/indexes/paintings-index/units/{layer}/1", params={"k": 2, "negative": True}).json()
    assert [e["image_id"] for e in bottom["examples"]] == [e.image_id for e in index.examples(layer, 1, k=2,
                                                                                               negative=True)]


def test_only_web_links_travel_as_links(api, index):
    pages = [api.get(f"/api/indexes/paintings-index/images/{i.id}").json()["painting"] for i in index.images()]
    links = {p["path"]: p["meta"]["link"] for p in pages}
    assert links["p1.png"] == "https://www.wga.hu/html/m/master/p1.html"
    assert links["twin.png"] is None  # a javascript: URL in the CSV is not offered as a link


def test_a_paintings_page_ranks_its_units_as_the_index_measured_them(api, index):
    layer = deepest(index)
    channels = index.manifest["layers"][layer]
    best = index.examples(layer, 2, k=1)[0]
    page = api.get(f"/api/indexes/paintings-index/images/{best.image_id}",
                   params={"layer": layer, "k": channels}).json()
    assert page["painting"]["image_id"] == best.image_id and page["layer"] == layer
    values = [u["value"] for u in page["units"]]
    assert values == sorted(values, reverse=True) and len(values) == channels
    unit = next(u for u in page["units"] if u["channel"] == 2)
    assert unit["value"] == pytest.approx(best.value, rel=1e-3, abs=1e-3)  # the server's pass == the index's
    assert unit["percentile"] == pytest.approx(best.percentile, abs=0.01)
    assert unit["examples"] == f"/api/indexes/paintings-index/units/{layer}/2"
    percentiles = [u["percentile"] for u in page["by_percentile"]]
    assert percentiles == sorted(percentiles, reverse=True)
    picture(api.get(unit["overlay"]))


def test_similar_paintings_leave_out_the_painting_and_set_its_twin_apart(api, index):
    by_path = {i.path: i.id for i in index.images()}
    page = api.get(f"/api/indexes/paintings-index/images/{by_path['sub/p0.png']}").json()
    ids = [s["image_id"] for s in page["similar"]]
    assert by_path["sub/p0.png"] not in ids
    # the twin (the same picture, larger) is the same painting, not a similar one
    assert page["same_painting"] == [by_path["twin.png"]] and by_path["twin.png"] not in ids
    assert page["similar"][0]["score"] >= page["similar"][1]["score"]
    assert page["mode"] == {"content": 1.0} and page["modes"] == ["content", "style", "composition"]


@pytest.mark.parametrize("mode", ["content", "style", "composition", "content:0.5,style:0.5"])
def test_similar_paintings_by_mode_say_why(api, index, mode):
    page = api.get("/api/indexes/paintings-index/images/3", params={"mode": mode, "similar": 4}).json()
    assert len(page["similar"]) == 4
    assert set(page["mode"]) == {m.split(":")[0] for m in mode.split(",")}
    scores = [s["score"] for s in page["similar"]]
    assert scores == sorted(scores, reverse=True)
    for s in page["similar"]:
        assert set(s["scores"]) == set(page["mode"])
        assert all(r["mode"] in page["mode"] for r in s["reasons"])
        assert bool(s["reasons"]) == (s["score"] > 0)  # nothing is shared with a painting at cosine ≤ 0
        for r in s["reasons"]:
            if r["channel"] is None:
                assert r["mode"] == "style" and r["unit"] is None
            else:  # a unit of an indexed layer links to its examples
                assert r["unit"] == f"/api/indexes/paintings-index/units/{r['layer']}/{r['channel']}"
                assert api.get(r["unit"]).status_code == 200


@pytest.mark.parametrize("mode", ["colour", "style:-1", "style:x", "", "a" * 101])
def test_a_bad_similarity_mode_is_refused(api, mode):
    r = api.get("/api/indexes/paintings-index/images/3", params={"mode": mode})
    assert r.status_code == 422
    assert "mode" in r.text.lower() or "weight" in r.text.lower() or "at most" in r.text.lower()


def test_an_upload_is_explained_like_the_same_painting_in_the_index(api, index):
    by_path = {i.path: i.id for i in index.images()}
    image_id = by_path["p3.png"]
    data = index.image_file(image_id).read_bytes()
    up = api.post("/api/uploads?index=paintings-index", content=data, headers={"Content-Type": "image/png"})
    assert up.status_code == 200, up.text
    body = up.json()
    page = api.get(f"/api/indexes/paintings-index/images/{image_id}").json()
    assert body["layer"] == page["layer"]
    assert [u["channel"] for u in body["units"]] == [u["channel"] for u in page["units"]]
    assert [u["value"] for u in body["units"]] == pytest.approx([u["value"] for u in page["units"]], rel=1e-4)
    # the upload is the same painting as p3: set apart, not listed as similar
    assert image_id in body["same_painting"] and image_id not in [s["image_id"] for s in body["similar"]]
    assert (body["width"], body["height"]) == (64, 48)
    overlay = picture(api.get(body["units"][0]["overlay"]))
    assert overlay.size == (64, 48)  # never enlarged
    picture(api.get(body["image"]))
    again = api.get(f"/api/uploads/{body['id']}", params={"index": "paintings-index"}).json()
    assert again["units"] == body["units"]


def test_an_upload_without_an_index_ranks_by_value_only(api):
    data = png_bytes(Image.new("RGB", (40, 30), (200, 30, 30)))
    body = api.post("/api/uploads", content=data, headers={"Content-Type": "image/png"}).json()
    assert body["model"] == "tiny" and body["index"] is None
    assert body["by_percentile"] == [] and body["similar"] == []
    assert all(u["percentile"] is None for u in body["units"])


@pytest.mark.parametrize("url", [
    "/api/indexes/nope/units/features.1/0",
    "/api/indexes/nope/images/0",
    "/api/indexes/paintings-index/images/9999",
    "/api/indexes/paintings-index/images/9999/thumb",
    "/api/indexes/paintings-index/images/9999/overlay?layer=features.1&channel=0",
    "/api/indexes/paintings-index/units/not.a.layer/0",
    "/api/indexes/paintings-index/units/logits/99",
    "/api/uploads/0123456789abcdef0123456789abcdef",
    "/api/uploads/0123456789abcdef0123456789abcdef/image",
])
def test_unknown_ids_are_404(api, url):
    r = api.get(url)
    assert r.status_code == 404, r.text
    assert r.json()["detail"]


@pytest.mark.parametrize("url", [
    "/api/indexes/paintings-index/images/..%2F..%2Fetc%2Fpasswd/thumb",
    "/api/indexes/paintings-index/images/-1/thumb",
    "/api/indexes/paintings-index/images/%2Fetc%2Fpasswd",
    "/api/indexes/..%2F..%2F/images/0/thumb",
])
def test_paths_in_requests_never_reach_the_filesystem(api, url):
    r = api.get(url)
    assert r.status_code in (404, 422), r.text
    assert "root:" not in r.text


def test_bad_uploads_get_clear_4xx(make_client, index):
    api = make_client(indexes=[index], upload_limits=UploadLimits(max_bytes=4000, max_pixels=64 * 64))
    post = lambda data, **kw: api.post("/api/uploads", content=data, params=kw,  # noqa: E731
                                       headers={"Content-Type": "application/octet-stream"})
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 60, 3), np.uint8))
    r = post(png_bytes(noisy))
    assert r.status_code == 413 and "MB" in r.json()["detail"]  # more bytes than allowed
    chunks = (png_bytes(noisy)[i:i + 1000] for i in range(0, len(png_bytes(noisy)), 1000))
    r = post(chunks)  # streamed without a Content-Length: counted while reading
    assert r.status_code == 413 and "MB" in r.json()["detail"]
    r = post(png_bytes(Image.new("RGB", (100, 100))))
    assert r.status_code == 413 and "pixels" in r.json()["detail"]  # few bytes, too many pixels
    r = post(b"%PDF-1.4 not an image at all")
    assert r.status_code == 415 and "not an image" in r.json()["detail"]
    small_noise = png_bytes(noisy.crop((0, 0, 30, 30)))
    r = post(small_noise[:len(small_noise) // 2])
    assert r.status_code == 415  # a truncated file
    assert post(b"").status_code == 422
    assert post(png_bytes(Image.new("RGB", (8, 8))), index="nope").status_code == 404
    assert post(png_bytes(Image.new("RGB", (8, 8))), model="nope").status_code == 404
    r = post(png_bytes(Image.new("RGB", (8, 8))), layer="no.such.layer")
    assert r.status_code == 404 and "no layer" in r.json()["detail"]  # the server's rule: naming what is not here


def test_uploads_are_kept_only_in_a_bounded_memory_cache(make_client, index):
    api = make_client(indexes=[index], upload_limits=UploadLimits(cache_entries=2))
    ids = []
    for colour in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]:
        body = api.post("/api/uploads", content=png_bytes(Image.new("RGB", (16, 16), colour))).json()
        ids.append(body["id"])
    assert api.get(f"/api/uploads/{ids[0]}").status_code == 404  # the oldest was dropped
    assert api.get(f"/api/uploads/{ids[2]}").status_code == 200


def test_an_index_of_other_weights_is_refused_at_start(index, tmp_path):
    with pytest.raises(UserError) as err:
        create_app({"tiny": tiny_loaded_model(seed=1)}, cache_dir=tmp_path / "c", indexes=[index])
    message = str(err.value)
    assert "tiny-seed0" in message and "tiny-seed1" in message


def test_units_constant_over_the_collection_are_not_ranked_by_percentile(api, index):
    layer = "features.3"
    channels = index.manifest["layers"][layer]
    dead = {c for c in range(channels) if index.stats(layer, c).max <= index.stats(layer, c).min}
    assert dead  # the tiny network has units that never fire on this collection
    page = api.get("/api/indexes/paintings-index/images/0", params={"layer": layer, "k": channels}).json()
    assert dead <= {u["channel"] for u in page["units"]}
    assert not dead & {u["channel"] for u in page["by_percentile"]}  # their "100th percentile" means nothing
    assert len(page["by_percentile"]) == channels - len(dead)


def test_an_upload_is_explained_against_the_index_asked_for(make_client, index, tmp_path):
    from imagemachines.index import build_index, open_index

    small = tmp_path / "small"
    small.mkdir()
    for i in (20, 21, 22):
        painting(i).save(small / f"q{i}.png")
    other = open_index(build_index(tiny_loaded_model(), small, tmp_path / "small-index", k=2, progress=False))
    api = make_client(indexes=[index, other])
    data = png_bytes(painting(3))
    first = api.post("/api/uploads?index=paintings-index", content=data).json()
    second = api.get(f"/api/uploads/{first['id']}", params={"index": "small-index"}).json()
    assert second["index"] == "small-index"
    assert {s["image_id"] for s in second["similar"]} <= {0, 1, 2} and len(second["similar"]) == 3
    # all 10 paintings: p3 is the upload's own painting, the twin is grouped under p0 as a copy
    assert len(first["similar"]) == 8 and len(first["same_painting"]) == 1
    assert sum(len(s["copies"]) for s in first["similar"]) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_row_that_leads_out_of_the_image_folder_is_refused_and_sends_no_pixel(built, secret, make_client, kind):
    """An index from elsewhere whose table names a file outside its image folder (absolute, `..`, a link):
    the painting's routes answer 422 with the reason, never the file (docs/security.md)."""
    col, out = built
    tamper(out, kind, col, secret, rows=[0])
    api = make_client(models={"blobnet": blob_model()}, indexes=[open_index(out)])
    for url in ("/api/indexes/idx/images/0/thumb", "/api/indexes/idx/images/0",
                "/api/indexes/idx/images/0/overlay?layer=features.2&channel=0"):
        r = api.get(url)
        assert r.status_code == 422, (url, r.status_code)
        assert "inside its image folder" in r.json()["detail"]
    assert picture(api.get("/api/indexes/idx/images/1/thumb")).size == (96, 64)


def test_a_paintings_page_says_where_it_ranks_and_compares_as_the_command_line_does(make_client, tmp_path):
    """One painting, one answer: with no layer asked, the web ranks and compares in the layer `imagemachines
    explain` takes; a block closing with ReLU6 is ranked before the clamp, and the page says so and where the
    similar paintings were found."""
    from imagemachines.explain import explain_image
    from imagemachines.index import build_index
    from tests.explain.planted import clamped_model
    from tests.explain.planted import painting as canvas

    model = clamped_model()
    for i in range(6):
        canvas([((10 + 8 * i, 40), (200, 40 * i, 30))], seed=i).save(tmp_path / f"c{i}.png")
    index = open_index(build_index(model, tmp_path, tmp_path / "clamped-index", k=3, progress=False))
    api = make_client(models={"clamped": model}, indexes=[index])
    page = api.get("/api/indexes/clamped-index/images/2", params={"similar": 3}).json()
    cli = explain_image(model, Image.open(index.image_file(2)).convert("RGB"), index=index, k=12, similar=3,
                        exclude=2)
    assert (page["layer"], page["ranked_at"], page["clamp"]) == (cli.layer, "features.1.1", "ReLU6")
    assert page["similar_basis"] == cli.similar_basis and cli.similar_basis.startswith("content at ")
    assert [s["image_id"] for s in page["similar"]] == [i for i, _ in cli.similar]
    assert [u["channel"] for u in page["units"]] == [h.channel for h in cli.units]
    assert page["ties"] == []
    # an index of other layers: the web's default is still the command line's
    partial = open_index(build_index(model, tmp_path, tmp_path / "partial", layers=["features.0", "features.1.1"],
                                     k=3, progress=False))
    api = make_client(models={"clamped": model}, indexes=[partial])
    page = api.get("/api/indexes/partial/images/0").json()
    assert page["layer"] == explain_image(model, Image.open(partial.image_file(0)), index=partial).layer


def test_a_units_notes_and_each_examples_photograph_travel_with_its_examples(api, index):
    from imagemachines.index.unit_notes import unit_notes

    layer = deepest(index)
    [listed] = api.get("/api/indexes").json()
    assert listed["ranking"] == "interior" and listed["note"] is None
    flagged = {entry["name"]: entry["border_units"] for entry in listed["layers"]}
    assert flagged == {name: index.border_units(name) for name in index.layers}
    for negative in (False, True):
        body = api.get(f"/api/indexes/paintings-index/units/{layer}/1", params={"k": 3, "negative": negative}).json()
        expected = unit_notes(index, layer, 1, negative=negative).as_dict()
        assert body["notes"] == expected and body["notes"]["group"] == index.k  # the unit's k as indexed
        border = index.border(layer, 1)
        assert body["notes"]["border"]["paintings"] == border.paintings and body["notes"]["border"]["count"] == 10
        assert "over the interior of its map" in body["notes"]["ranking_text"]
        for ex in body["examples"]:
            assert ex["on_border"] is False  # the interior ranking
            assert ex["photo"] == f"{ex['width']} × {ex['height']} px" and ex["width"] in (64, 80)


def test_the_overlays_of_an_index_ranked_on_mirrored_paintings_are_its_own_maps(make_client, tmp_path):
    from imagemachines.index import build_index, open_index
    from imagemachines.index.maps import activation_maps, heat_overlay
    from tests.serve.collection_fixtures import make_collection

    images, meta = make_collection(tmp_path)
    mirrored = open_index(build_index(tiny_loaded_model(), images, tmp_path / "mirrored", k=3, metadata=meta,
                                      ranking="reflect", progress=False))
    api = make_client(indexes=[mirrored])
    assert api.get("/api/indexes").json()[0]["ranking"] == "reflect"
    layer, channel, image_id = "features.1", 3, 2
    got = np.asarray(picture(api.get(f"/api/indexes/mirrored/images/{image_id}/overlay",
                                     params={"layer": layer, "channel": channel, "size": 64})), dtype=float)
    painting_ = Image.open(mirrored.image_file(image_id)).convert("RGB")
    vmax = mirrored.stats(layer, channel).max

    def expected(ranking):
        heat = activation_maps(tiny_loaded_model(), [painting_], layer, [channel], ranking=ranking)[0, 0]
        return np.asarray(heat_overlay(painting_, heat, vmax=vmax), dtype=float)

    own, plain = np.abs(got - expected("reflect")).mean(), np.abs(got - expected("full")).mean()
    assert own < 3 < plain  # JPEG noise vs the maps of another network input
