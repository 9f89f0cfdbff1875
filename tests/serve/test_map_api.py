"""The map routes on a generated collection (three families, tiny model): points, clusters, sprite sheets, and the
contrast of a selection, with every bad request answered by a clear 4xx and the guards of the other routes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imagemachines.serve.app import create_app
from tests.collection_map.families import index_families, make_families, quick_map
from tests.conftest import tiny_loaded_model


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("mapapi")
    index = index_families(root, *make_families(root))
    quick_map(index)
    app = create_app({"tiny": tiny_loaded_model()}, cache_dir=root / "cache", indexes=[index])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, index, root / "cache"


def base(client) -> str:
    (entry,) = client.get("/api/indexes").json()
    return f"/api/indexes/{entry['id']}"


def outline_round(points: np.ndarray, pad: float = 0.01) -> list[list[float]]:
    x0, y0 = points.min(0) - pad
    x1, y1 = points.max(0) + pad
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def family_points(client, family: str):
    data = client.get(f"{base(client)}/maps/features.3").json()
    label = next(f for f in data["facets"] if f["name"] == "label")
    code = label["values"].index(family)
    rows = [i for i, c in enumerate(label["codes"]) if c == code]
    return data, rows, np.c_[data["x"], data["y"]][rows]


def test_the_maps_and_their_points(served):
    client, index, _ = served
    (summary,) = client.get(f"{base(client)}/maps").json()
    assert (summary["name"], summary["layer"], summary["n"], summary["missing"], summary["stale"]) == \
        ("features.3", "features.3", 60, 0, False)
    data = client.get(f"{base(client)}/maps/features.3").json()
    assert data["n"] == 60 and sorted(data["image_id"]) == list(range(60))
    for key in ("x", "y", "cluster", "title", "artist", "date", "year"):
        assert len(data[key]) == 60, key
    first = data["image_id"].index(0)
    assert data["title"][first] == index.image(0).meta["title"]
    assert data["year"][first] == int(index.image(0).meta["year"])
    assert {f["name"] for f in data["facets"]} >= {"label", "school", "artist"}
    assert len(data["clusters"]) == 3 and data["sheets"] == 1 and data["geometry"]["per_sheet"] == 4096
    assert "href" not in data                                 # no file paths of the server's disk


def test_sprite_sheets_are_made_once_kept_on_disk_and_bounded_to_the_map(served):
    client, index, cache = served
    url = f"{base(client)}/maps/features.3/sprites/0.jpg"
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    sheet = Image.open(io.BytesIO(r.content))
    assert sheet.size == (64 * 32, 32)                       # 60 paintings: one row of 64 cells
    data = client.get(f"{base(client)}/maps/features.3").json()
    cell = np.asarray(sheet.convert("RGB"))[:, :32].astype(int)   # point 0's cell shows point 0's painting
    with Image.open(index.image_file(data["image_id"][0])) as im:
        colour = np.asarray(im.convert("RGB")).reshape(-1, 3).mean(0)
    centre = cell[8:24, 8:24].reshape(-1, 3).mean(0)
    assert np.abs(centre - colour).max() < 60
    files = list((cache / "sprites").glob("*.jpg"))
    assert len(files) == 1 and client.get(url).content == r.content
    assert client.get(f"{base(client)}/maps/features.3/sprites/1.jpg").status_code == 404
    assert client.get(url, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403


def test_the_contrast_of_a_family_names_its_units_its_paintings_and_its_metadata(served):
    client, index, _ = served
    data, rows, xy = family_points(client, "red")
    r = client.post(f"{base(client)}/maps/features.3/contrast",
                    json={"selection": {"polygon": outline_round(xy)}, "k": 5, "examples": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["n_in"], body["n_out"], body["against"], body["layer"]) == (20, 40, "rest", "features.3")
    assert len(body["units"]) == 5 and body["units"][0]["p"] == pytest.approx(1 / 201)
    assert abs(body["units"][0]["d"]) > 1.5
    red = {data["image_id"][i] for i in rows}
    for unit in body["units"]:
        assert len(unit["examples"]) == 4 and {e["image_id"] for e in unit["examples"]} <= red
        values = [e["value"] for e in unit["examples"]]
        assert values == sorted(values, reverse=True)
        assert unit["examples_link"].endswith(f"/units/features.3/{unit['channel']}")
    pooled = np.asarray(index.pooled("features.3"), dtype=np.float64)
    top = body["units"][0]
    ids = sorted(red)
    assert top["mean_in"] == pytest.approx(pooled[ids, top["channel"]].mean(), rel=1e-3)
    assert ("label", "red") in {(v["facet"], v["value"]) for v in body["over_represented"]}
    assert {k: v for k, v in next(m for m in body["majority"] if m["facet"] == "school").items()
         if k in ("facet", "value", "share")} == \
        {"facet": "school", "value": "Venetian", "share": 1.0}


def test_clusters_ids_and_two_selections(served):
    client, _, _ = served
    url = f"{base(client)}/maps/features.3/contrast"
    data, red_rows, _ = family_points(client, "red")
    _, blue_rows, _ = family_points(client, "blue")
    by_cluster = client.post(url, json={"selection": {"cluster": 0}, "permutations": 0}).json()
    assert by_cluster["n_in"] == data["cluster"].count(0) and by_cluster["units"][0]["p"] is None
    red_ids = [data["image_id"][i] for i in red_rows]
    blue_ids = [data["image_id"][i] for i in blue_rows]
    versus = client.post(url, json={"selection": {"ids": red_ids}, "against": {"ids": blue_ids}}).json()
    assert (versus["n_in"], versus["n_out"], versus["against"]) == (20, 20, "selection")
    again = client.post(url, json={"selection": {"ids": red_ids}, "against": {"ids": blue_ids}}).json()
    assert [u["channel"] for u in again["units"]] == [u["channel"] for u in versus["units"]]  # seeded


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"selection": {"polygon": [[0, 0], [1, 1]]}}, 422, "at least 3"),
    ({"selection": {"polygon": [[0, 0], [0, 1], [1, 1]], "cluster": 1}}, 422, "exactly one"),
    ({"selection": {}}, 422, "exactly one"),
    ({"selection": {"cluster": 99}}, 422, "no cluster 99"),
    ({"selection": {"ids": [0, 1, 99999]}}, 422, "not paintings on this map"),
    ({"selection": {"polygon": [[5, 5], [6, 5], [6, 6]]}}, 422, "at least 2 paintings"),
    ({"selection": {"ids": [0, 1, 2]}, "against": {"ids": [2, 3, 4]}}, 422, "share 1 paintings"),
    ({"selection": {"cluster": 0}, "permutations": 5000}, 422, "permutations"),
    ({"selection": {"cluster": 0}, "k": 0}, 422, "k"),
    ({"selection": {"cluster": 0}, "colour": "red"}, 422, "colour"),
    ({"selection": {"polygon": [[0, 0], [0, 1e9], [1, 1]]}}, 422, "finite map coordinates"),
])
def test_bad_contrast_requests_say_what_to_change(served, body, status, message):
    client, _, _ = served
    r = client.post(f"{base(client)}/maps/features.3/contrast", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_unknown_things_guards_and_bounds(served):
    client, _, _ = served
    b = base(client)
    assert client.get("/api/indexes/nope/maps").status_code == 404
    r = client.get(f"{b}/maps/features.0")
    assert r.status_code == 404 and "imagemachines map" in r.json()["detail"]
    assert client.get(f"{b}/maps/..%2Findex.json").status_code in (404, 422)
    assert client.get(f"{b}/maps/features.3/sprites/-1.jpg").status_code == 422
    cross = client.post(f"{b}/maps/features.3/contrast", json={"selection": {"cluster": 0}},
                        headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    big = client.post(f"{b}/maps/features.3/contrast", content=b'{"selection": {"ids": [' + b"1," * 600_000 + b"1]}}",
                      headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    many = client.post(f"{b}/maps/features.3/contrast", json={"selection": {"ids": list(range(100_001))}})
    assert many.status_code == 422 and "100000" in many.json()["detail"]
