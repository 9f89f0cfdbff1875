"""URLs between the atlas and the web interface (``serve``).

Atlas → interface: a unit page links to ``SERVE/#model=M&layer=L&unit=C&method=…&size=…&steps=…&seed=…``,
the deep-link hash that ``serve/static/app.js`` reads and writes ("copy link").
Interface → atlas: a copied link maps to ``ATLAS/M/L/C.html`` by :func:`atlas_page` (documented in
docs/atlas.md), so a link from the interface finds the same unit in a published atlas.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit


def serve_link(base: str, model: str, layer: str, channel: int, *, method: str, size: int, steps: int,
               seed: int) -> str:
    """The interface's deep link for one unit with these settings."""
    query = urlencode({"model": model, "layer": layer, "unit": channel, "method": method, "size": size,
                       "steps": steps, "seed": seed})
    return f"{base.rstrip('/')}/#{query}"


def atlas_page(link: str) -> str:
    """The atlas page (relative to the site root) of the unit an interface link points at."""
    params = dict(parse_qsl(urlsplit(link).fragment or link.lstrip("#")))
    try:
        model, layer, unit = params["model"], params["layer"], params["unit"]
    except KeyError as exc:
        raise ValueError(f"{link!r} names no model, layer and unit") from exc
    channel = unit.split("@", 1)[0]
    if not channel.isdigit():
        raise ValueError(f"unit {unit!r} is not a channel number")
    return f"{model}/{layer}/{int(channel)}.html"
