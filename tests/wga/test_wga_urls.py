"""Artwork ids, image URLs and the base-URL / data-dir settings."""

from __future__ import annotations

import pytest

from imagemachines.errors import UserError
from imagemachines.wga import paths
from imagemachines.wga.urls import BadPageUrl, derive_image_url, image_url, page_key


@pytest.mark.parametrize(("url", "key"), [
    ("https://www.wga.hu/html/a/aachen/allegory.html", "a/aachen/allegory"),
    ("https://www.wga.hu/html/d/durer/2/12/7smallp/1/01_small.html", "d/durer/2/12/7smallp/1/01_small"),
    ("https://www.wga.hu/html/m/monnoyer/flowers4..html", "m/monnoyer/flowers4."),
    ("http://mirror.example/wga/html/b/bosch/1/garden.html", "b/bosch/1/garden"),
])
def test_page_key(url, key):
    assert page_key(url) == key


@pytest.mark.parametrize("url", [
    "https://www.wga.hu/art/a/aachen/allegory.jpg",
    "https://www.wga.hu/html/a/aachen/",
    "https://www.wga.hu/html/a/../../etc/passwd.html",
    "https://www.wga.hu/html/a/.hidden.html",
    "not a url",
])
def test_bad_page_urls(url):
    with pytest.raises(BadPageUrl):
        page_key(url)


def test_derived_image_urls_and_variants():
    page = "https://www.wga.hu/html/a/aachen/allegory.html"
    assert derive_image_url(page) == "https://www.wga.hu/art/a/aachen/allegory.jpg"
    assert derive_image_url(page, "detail") == "https://www.wga.hu/detail/a/aachen/allegory.jpg"
    assert derive_image_url(page, "preview") == "https://www.wga.hu/preview/a/aachen/allegory.jpg"
    assert derive_image_url("http://m.example/x/html/b/c/d.html") == "http://m.example/x/art/b/c/d.jpg"
    assert image_url("a/b/c", "http://127.0.0.1:8/", "art") == "http://127.0.0.1:8/art/a/b/c.jpg"
    with pytest.raises(UserError, match="Did you mean: detail"):
        image_url("a/b/c", "http://x", "detial")


def test_base_url_option_env_default(monkeypatch):
    monkeypatch.delenv(paths.ENV_BASE_URL, raising=False)
    assert paths.base_url() == "https://www.wga.hu"
    monkeypatch.setenv(paths.ENV_BASE_URL, "http://127.0.0.1:9000/")
    assert paths.base_url() == "http://127.0.0.1:9000"
    assert paths.base_url("https://mirror.example/wga") == "https://mirror.example/wga"
    for bad in ("ftp://x", "www.wga.hu", "http://x/?q=1"):
        with pytest.raises(UserError, match="--base-url"):
            paths.base_url(bad)


def test_data_dir_option_env_default(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.ENV_DATA_DIR, raising=False)
    assert paths.data_dir().name == "wga" and "imagemachines" in str(paths.data_dir())
    monkeypatch.setenv(paths.ENV_DATA_DIR, str(tmp_path))
    assert paths.data_dir() == tmp_path / "wga"
    assert paths.data_dir(tmp_path / "mine") == tmp_path / "mine"
