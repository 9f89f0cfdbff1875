"""The collection API on the tiny model and a generated collection indexed in the test: a unit's paintings, a
painting's page, thumbnails and heat overlays, uploads, and every kind of bad request."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from imagemachines.errors import UserError
from imagemachines.models import LOGITS
from imagemachines.serve.app import create_app
from imagemachines.serve.uploads import UploadLimits
from tests.conftest import tiny_loaded_model
from tests.serve.collection_fixtures import N_PAINTINGS, build_tiny_index, painting


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


def test_similar_paintings_leave_out_the_painting_and_find_its_twin(api, index):
    by_path = {i.path: i.id for i in index.images()}
    page = api.get(f"/api/indexes/paintings-index/images/{by_path['sub/p0.png']}").json()
    ids = [s["image_id"] for s in page["similar"]]
    assert by_path["sub/p0.png"] not in ids
    assert ids[0] == by_path["twin.png"]
    assert page["similar"][0]["score"] > page["similar"][1]["score"]


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
    assert body["similar"][0]["image_id"] == image_id and body["similar"][0]["score"] == pytest.approx(1, abs=1e-2)
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
    assert len(first["similar"]) == 10


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
