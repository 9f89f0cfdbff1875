"""Uploads under a fixed memory ceiling: at most `decoders` decodes at once (503 + Retry-After beyond), a per-decode
memory bound sized to the budget (JPEGs decoded at a reduced scale), memory given back after a burst, and a time
to live. The ceiling is checked with decodes held open by the test, the time to live with a fake clock."""

from __future__ import annotations

import threading
from io import BytesIO

import pytest
from fastapi import HTTPException
from PIL import Image

from imagemachines.serve import uploads as uploads_module
from imagemachines.serve.uploads import UploadLimits, UploadStore, decode_need, decode_upload

LAYER = {"layer": "features.2", "k": 2}


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def colour(i: int, size=(24, 16), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, (i * 37 % 256, i * 91 % 256, 120) + ((255,) if mode == "RGBA" else ()))


class HeldDecodes:
    """A decode that waits until released, counting how many run at once."""

    def __init__(self) -> None:
        self.running, self.most = 0, 0
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, data: bytes, limits: UploadLimits):
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.entered.release()
        assert self.release.wait(20)
        with self._lock:
            self.running -= 1
        return decode_upload(data, limits)


def test_at_most_two_decodes_run_at_once_the_third_is_told_to_come_back(monkeypatch):
    trims = []
    monkeypatch.setattr(uploads_module, "return_memory", lambda: trims.append(1))
    store = UploadStore(UploadLimits())
    store.decode = held = HeldDecodes()
    done = []
    threads = [threading.Thread(target=lambda i=i: done.append(store.add(encoded(colour(i))))) for i in range(2)]
    for t in threads:
        t.start()
    assert held.entered.acquire(timeout=20) and held.entered.acquire(timeout=20)  # both are decoding now
    with pytest.raises(HTTPException) as refused:
        store.add(encoded(colour(2)))
    assert refused.value.status_code == 503 and refused.value.headers == {"Retry-After": "1"}
    assert "decoding 2 other uploads" in refused.value.detail
    assert trims == []  # nothing given back while the burst goes on
    held.release.set()
    for t in threads:
        t.join(20)
    assert len(done) == 2 and held.most == 2 and trims == [1]  # once, when the last decode of the burst ended
    assert store.add(encoded(colour(2))).image.size == (24, 16)  # room again
    assert store.add(encoded(colour(0))) is done[0] or store.add(encoded(colour(0))) is done[1]  # kept: no decode


def test_the_route_answers_503_with_retry_after_while_both_decoders_are_busy(make_client):
    client = make_client()
    held = client.app.state.uploads.decode = HeldDecodes()
    answers = []
    posts = [threading.Thread(target=lambda i=i: answers.append(
        client.post("/api/uploads", content=encoded(colour(i)), params=LAYER))) for i in range(2)]
    for t in posts:
        t.start()
    assert held.entered.acquire(timeout=20) and held.entered.acquire(timeout=20)
    busy = client.post("/api/uploads", content=encoded(colour(5)), params=LAYER)
    held.release.set()
    for t in posts:
        t.join(30)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and busy.json()["fault"] == "busy"
    assert [a.status_code for a in answers] == [200, 200] and held.most == 2


@pytest.mark.parametrize(("mode", "side", "fits"), [
    ("RGBA", 360, True), ("RGBA", 400, False),  # 4 bytes a pixel + a full-size RGB copy: 8 bytes a pixel
    ("RGB", 512, True), ("RGB", 560, False),    # reduced as it is: 4 bytes a pixel (Pillow's RGB)
    ("L", 1000, True), ("P", 600, False),       # 1 byte; a palette image is converted first: 5 bytes
])
def test_a_decode_must_fit_its_share_of_the_memory_budget(mode, side, fits):
    limits = UploadLimits(decode_memory=2 * 2**20, decoders=2)  # 1 MiB for each decode
    assert limits.decode_bytes == 2**20
    data = encoded(Image.new("RGBA", (side, side), (90, 60, 30, 255)).convert(mode))
    assert (decode_need(mode, side, side) <= limits.decode_bytes) == fits
    if fits:
        up = decode_upload(data, limits)
        assert (up.width, up.height, up.image.mode) == (side, side, "RGB")
    else:
        with pytest.raises(HTTPException) as refused:
            decode_upload(data, limits)
        assert refused.value.status_code == 413 and "MB per image" in refused.value.detail
        side_hint = int(refused.value.detail.split("about ")[1].split("×")[0])
        assert decode_need(mode, side_hint, side_hint) <= limits.decode_bytes < decode_need(mode, side_hint + 1,
                                                                                            side_hint + 1)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_so_it_fits_where_the_same_png_does_not():
    limits = UploadLimits(decode_memory=10 * 2**20, decoders=2)  # 5 MiB each
    photo = Image.new("RGB", (4096, 4096), (140, 110, 70))
    up = decode_upload(encoded(photo, "JPEG"), limits)  # draft: 1/4 scale, 1024² × 4 bytes = 4 MiB
    assert (up.width, up.height, up.format) == (4096, 4096, "JPEG") and up.image.size == (1024, 1024)
    with pytest.raises(HTTPException) as refused:
        decode_upload(encoded(photo, "PNG"), limits)  # 64 MiB of decoded pixels
    assert refused.value.status_code == 413


def test_an_upload_is_kept_for_its_time_to_live_after_its_last_use_with_what_was_computed_from_it(make_client):
    client = make_client()
    store, bench = client.app.state.uploads, client.app.state.workbench
    now = [1000.0]
    store.clock = lambda: now[0]
    ttl = store.limits.ttl
    assert ttl == 30 * 60
    up = client.post("/api/uploads", content=encoded(colour(1)), params=LAYER).json()
    assert client.get(up["units"][0]["overlay"]).status_code == 200
    assert client.get(up["image"]).status_code == 200

    def computed_from_it() -> int:
        caches = (bench.maps, bench.images, bench.pictures, bench.explanations)
        return sum(1 for cache in caches for key in cache.cached_keys() if up["id"] in key)

    assert computed_from_it() >= 3  # the explanation, the layer's maps, the overlay and the picture
    now[0] += ttl - 1
    assert client.get(f"/api/uploads/{up['id']}", params=LAYER).status_code == 200  # used again: kept longer
    now[0] += ttl - 1
    assert client.get(up["image"]).status_code == 200
    other = client.post("/api/uploads", content=encoded(colour(2)), params=LAYER).json()
    now[0] += ttl + 1
    gone = client.get(f"/api/uploads/{up['id']}", params=LAYER)
    assert gone.status_code == 404 and "30 minutes after their last use" in gone.json()["detail"]
    assert computed_from_it() == 0  # its maps, explanation and pictures went with it
    assert client.get(other["image"]).status_code == 404  # unused as long: gone too


def test_uploads_pushed_out_by_newer_ones_take_what_was_computed_from_them_along(make_client):
    client = make_client(upload_limits=UploadLimits(cache_entries=2))
    bench = client.app.state.workbench
    ids = [client.post("/api/uploads", content=encoded(colour(i)), params=LAYER).json()["id"] for i in range(3)]
    assert client.get(f"/api/uploads/{ids[0]}").status_code == 404
    keys = [key for cache in (bench.maps, bench.explanations, bench.pictures) for key in cache.cached_keys()]
    assert not any(ids[0] in key for key in keys) and any(ids[2] in key for key in keys)
