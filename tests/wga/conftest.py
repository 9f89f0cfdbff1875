"""Fixtures for the WGA tests: a generated catalog, a local WGA-like server, and data folders."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import wgafake  # noqa: E402
from wgaserver import WgaServer  # noqa: E402

from imagemachines.wga.catalog import write_catalog  # noqa: E402
from imagemachines.wga.parse import parse_catalog  # noqa: E402

HAVE_XLWT = importlib.util.find_spec("xlwt") is not None  # writes the generated .xls catalogs
WGA_CATALOG_ZIP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "data_xls.zip"
from wgafake import NOT_ON_SERVER  # noqa: E402


@pytest.fixture(scope="session")
def rows() -> list[dict[str, str]]:
    """The generated catalog (30 artists x 10 works), as the database must store it."""
    return wgafake.make_rows()


@pytest.fixture(scope="session")
def keys(rows) -> list[str]:
    return [wgafake.key_of(r) for r in rows]


@pytest.fixture(scope="session")
def jpegs(keys) -> dict[str, bytes]:
    """Images for every artwork except the last ``NOT_ON_SERVER``."""
    return {k: wgafake.make_jpeg(k) for k in keys[:-NOT_ON_SERVER]}


@pytest.fixture(scope="session")
def catalog_files(rows) -> dict[str, bytes]:
    """The catalog exports the server offers, at WGA's paths (the .xls ones only where xlwt is installed)."""
    csv = wgafake.to_csv(rows)
    files = {"/database/download/data_txt.zip": wgafake.zipped("catalog.csv", csv), "/catalog.csv": csv}
    if HAVE_XLWT:
        xls = wgafake.to_xls(rows)
        files |= {"/database/download/data_xls.zip": wgafake.zipped("catalog.xls", xls), "/catalog.xls": xls}
    return files


@pytest.fixture
def server(jpegs, catalog_files):
    """A fresh local WGA server (no latency, no faults) for one test."""
    with WgaServer(jpegs, catalog_files) as srv:
        yield srv


@pytest.fixture(scope="session")
def catalog_template(tmp_path_factory, catalog_files) -> Path:
    """A data dir holding the generated catalog, imported once."""
    root = tmp_path_factory.mktemp("wga-template")
    data = catalog_files["/database/download/data_txt.zip"]
    write_catalog(parse_catalog(data, "data_txt.zip"), root, "generated")
    return root


@pytest.fixture
def data_dir(tmp_path, catalog_template) -> Path:
    """A data dir with the generated catalog and nothing downloaded."""
    import shutil

    root = tmp_path / "wga"
    root.mkdir()
    shutil.copyfile(catalog_template / "catalog.sqlite", root / "catalog.sqlite")
    return root


@pytest.fixture(scope="session")
def real_catalog(tmp_path_factory) -> Path:
    """A data dir with the real January 2018 catalog imported (read in place); skipped when absent."""
    if not WGA_CATALOG_ZIP.is_file():
        pytest.skip(f"{WGA_CATALOG_ZIP} is absent")
    root = tmp_path_factory.mktemp("wga-real")
    write_catalog(parse_catalog(WGA_CATALOG_ZIP.read_bytes(), WGA_CATALOG_ZIP.name), root,
                  str(WGA_CATALOG_ZIP))
    return root
