"""A static atlas of a model: every unit of the chosen layers rendered once, as a website that works offline.

    imagemachines atlas mobilenet_v2 --out site/ --layers features.14 --channels 0-15

One job per module: :mod:`plan` (which units, in which batches, on which rank), :mod:`state` (settings check,
one record per finished image, resume), :mod:`build` (the render loop over :func:`imagemachines.vis.render`),
:mod:`site` (pages and the JSON manifest), :mod:`links` (URLs between the atlas and ``serve``),
:mod:`cli` (the command, torchrun aware).
"""

from __future__ import annotations

__all__ = ["AtlasSettings", "BuildResult", "build_atlas"]


def __getattr__(name: str):  # imported on first use: `imagemachines --help` does not pay for torch
    if name not in __all__:
        raise AttributeError(f"module 'imagemachines.atlas' has no attribute {name!r}")
    from imagemachines.atlas import build

    return getattr(build, name)
