"""Where WGA data lives and which server it comes from (CLI option > environment variable > default)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from imagemachines.errors import UserError

ENV_DATA_DIR = "IMAGEMACHINES_DATA_DIR"
ENV_BASE_URL = "IMAGEMACHINES_WGA_BASE_URL"
DEFAULT_BASE_URL = "https://www.wga.hu"
CATALOG_PATH = "database/download/data_xls.zip"

CATALOG_DB = "catalog.sqlite"
MANIFEST_DB = "manifest.sqlite"
IMAGES = "images"
SUBSETS = "subsets"


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The WGA data directory: ``override``, else ``$IMAGEMACHINES_DATA_DIR/wga``, else the user data dir."""
    if override:
        return Path(override).expanduser().resolve()
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return (Path(env).expanduser() / "wga").resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("imagemachines")) / "wga"


def base_url(override: str | None = None) -> str:
    """The WGA server (or mirror) root, validated, without a trailing slash."""
    url = (override or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UserError(f"base URL {url!r} is not an http(s) address like {DEFAULT_BASE_URL}; "
                        f"fix --base-url or ${ENV_BASE_URL}.")
    return url


def default_catalog_source(base: str) -> str:
    """The catalog export on the server: ``<base>/database/download/data_xls.zip``."""
    return f"{base}/{CATALOG_PATH}"


def catalog_db(root: Path) -> Path:
    return root / CATALOG_DB


def manifest_db(root: Path) -> Path:
    return root / MANIFEST_DB


def store_name(variant: str, max_side: int | None) -> str:
    """The images sub-folder for one variant and size: ``art``, ``art-512``, ``detail`` …"""
    return variant if not max_side else f"{variant}-{max_side}"


def store_dir(root: Path, store: str) -> Path:
    return root / IMAGES / store
