"""The downloader and the catalog import under hostile or broken input: oversized and compressed-bomb bodies,
redirects to other hosts, huge pixel counts, a name the filesystem refuses, a catalog zip bomb."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from imagemachines.errors import UserError
from imagemachines.wga.catalog import read_source
from imagemachines.wga.download import DownloadOptions, download
from imagemachines.wga.manifest import Manifest
from imagemachines.wga.parse import parse_catalog
from imagemachines.wga.paths import manifest_db, store_dir

FAST = {"concurrency": 4, "rate": 0, "backoff": 0.01, "retries": 2, "timeout": 2.0, "seed": 0}


def failed(data_dir) -> dict[str, str]:
    with Manifest(manifest_db(data_dir), readonly=True) as m:
        return {it.id: it.reason for it in m.items("art", states=("failed",))}


def stored(data_dir) -> set[str]:
    folder = store_dir(data_dir, "art")
    return {str(p.relative_to(folder)).removesuffix(".jpg") for p in folder.rglob("*.jpg")}


def test_bodies_beyond_max_bytes_are_refused_not_stored(server, data_dir, keys):
    server.inject(keys[0], "huge:300000")       # a JPEG followed by zeros, with its Content-Length
    server.inject(keys[1], "gzipbomb:5000000")  # 5 MB of zeros in a few kB of gzip
    report = download(data_dir, keys[:4], server.url, DownloadOptions(**FAST, max_bytes=100_000), progress=False)
    reasons = failed(data_dir)
    assert set(reasons) == {keys[0], keys[1]} and report.counts["ok"] == 2
    assert all("larger than --max-bytes 100,000" in r for r in reasons.values())
    assert server.requests[f"/art/{keys[0]}.jpg"] == 1  # too large is final: no retries
    assert stored(data_dir) == set(keys[2:4])
    assert not list(store_dir(data_dir, "art").rglob("*.part"))


def test_redirects_stay_on_the_base_host_unless_allowed(server, data_dir, keys):
    port = server.url.rsplit(":", 1)[1]
    elsewhere = f"http://localhost:{port}/art/{keys[5]}.jpg"  # the same server under another host name
    server.inject(keys[0], f"redirect:{elsewhere}")
    server.inject(keys[1], f"redirect:{server.url}/art/{keys[6]}.jpg")  # same host: followed
    download(data_dir, keys[:2], server.url, DownloadOptions(**FAST), progress=False)
    assert "redirected to another host (localhost)" in failed(data_dir)[keys[0]]
    assert stored(data_dir) == {keys[1]}
    server.inject(keys[0], f"redirect:{elsewhere}")
    download(data_dir, keys[:1], server.url, DownloadOptions(**FAST, allow_redirect_hosts=("localhost",)),
             progress=False)
    assert stored(data_dir) == {keys[0], keys[1]} and failed(data_dir) == {}


def test_images_beyond_the_pixel_bound_are_refused_before_decoding(server, data_dir, keys):
    report = download(data_dir, keys[:2], server.url, DownloadOptions(**{**FAST, "retries": 0}, max_pixels=96 * 64 - 1),
                      progress=False)
    assert report.counts == {"failed": 2}
    assert all("96×64 pixels is more than the bound of 6,143 pixels" in r for r in failed(data_dir).values())


def test_one_bad_item_fails_alone_and_reruns_finish(server, data_dir, keys, jpegs):
    bad = "x" * 300  # a file name longer than any filesystem allows
    server.images = {**jpegs, bad: jpegs[keys[0]]}  # a copy: jpegs is shared by the whole session
    ids = [keys[0], bad, keys[1]]
    report = download(data_dir, ids, server.url, DownloadOptions(**FAST), progress=False)
    assert report.counts == {"ok": 2, "failed": 1} and "File name too long" in failed(data_dir)[bad]
    again = download(data_dir, ids, server.url, DownloadOptions(**FAST), progress=False)  # no traceback, no stuck
    assert again.counts == {"ok": 2, "failed": 1} and again.already == 2


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return out.getvalue()


def test_a_catalog_zip_bomb_is_refused_before_it_is_read(monkeypatch):
    import imagemachines.wga.parse as parse

    monkeypatch.setattr(parse, "MAX_CATALOG_BYTES", 1_000_000)
    bomb = zipped("catalog.csv", b"AUTHOR;TITLE\n" + b" " * 5_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(UserError, match="unpacks to more than"):
        parse_catalog(bomb, "data_txt.zip")


def test_catalog_downloads_are_capped_and_stay_on_their_host(server, monkeypatch, keys):
    import imagemachines.wga.catalog as catalog

    server.files["/big.csv"] = b"x" * 3_000_000
    monkeypatch.setattr(catalog, "MAX_CATALOG_BYTES", 1_000_000)
    with pytest.raises(UserError, match="larger than"):
        read_source(f"{server.url}/big.csv", "test")
    port = server.url.rsplit(":", 1)[1]
    server.inject(keys[0], f"redirect:http://localhost:{port}/catalog.csv")
    with pytest.raises(UserError, match="another host"):
        read_source(f"{server.url}/art/{keys[0]}.jpg", "test")


def test_pixel_bound_fits_real_images():
    big = io.BytesIO()
    Image.new("RGB", (4000, 3000)).save(big, "JPEG")
    from imagemachines.wga.images import decode_check

    assert decode_check(big.getvalue()) == (4000, 3000)  # a large museum scan passes the default bound
