"""WGA page URLs to stable artwork ids and image URLs.

``https://www.wga.hu/html/a/aachen/allegory.html`` has the id ``a/aachen/allegory`` and the image
``https://www.wga.hu/art/a/aachen/allegory.jpg`` (variants ``detail`` and ``preview`` swap the ``art`` segment).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

VARIANTS = ("art", "detail", "preview")
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


class BadPageUrl(ValueError):
    """A catalog URL that is not a WGA ``…/html/….html`` page."""


def page_key(url: str) -> str:
    """The artwork id: the path between the ``html`` segment and the ``.html`` suffix (any depth)."""
    path = urlsplit(url.strip()).path
    segments = path.split("/")
    if "html" not in segments[:-1]:
        raise BadPageUrl(f"no /html/ folder in {url!r}")
    rest = segments[segments.index("html") + 1:]
    if not rest[-1].lower().endswith(".html") or len(rest[-1]) <= 5:
        raise BadPageUrl(f"{url!r} does not end in a .html page")
    rest[-1] = rest[-1][:-5]
    if any(not _SEGMENT.match(s) for s in rest):
        raise BadPageUrl(f"unexpected characters in {url!r}")
    return "/".join(rest)


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        from imagemachines.errors import UserError, did_you_mean

        raise UserError(f"unknown image variant {variant!r}: use one of {', '.join(VARIANTS)}."
                        + did_you_mean(variant, VARIANTS))
    return variant


def image_url(key: str, base: str, variant: str = "art") -> str:
    """``<base>/<variant>/<id>.jpg``."""
    return f"{base.rstrip('/')}/{check_variant(variant)}/{key}.jpg"


def derive_image_url(page_url: str, variant: str = "art") -> str:
    """The image of a page on the page's own server: ``…/html/x/y.html`` becomes ``…/<variant>/x/y.jpg``."""
    key = page_key(page_url)
    parts = urlsplit(page_url.strip())
    prefix = parts.path[: parts.path.index("/html/")]
    return image_url(key, f"{parts.scheme}://{parts.netloc}{prefix}", variant)


def image_relpath(key: str) -> str:
    """Where an artwork's image lives inside a store folder: ``a/aachen/allegory.jpg``."""
    return f"{key}.jpg"
