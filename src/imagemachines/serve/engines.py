"""The engine calls a render worker makes: ``render`` (feature visualization) or ``accentuate`` (a painting).

The scheduler and the render processes call :func:`run_engine` with the arguments a job's spec gives
(``engine_call``); ``engine`` picks the function, every other argument goes to it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

ENGINES = ("render", "accentuate")


def run_engine(model, units: Sequence, *, engine: str = "render", **options) -> list:
    """``imagemachines.vis.render(model, units, **options)``, or with ``engine="accentuate"``
    ``imagemachines.vis.accentuate(model, options["image"], units, **rest)``."""
    if engine == "accentuate":
        from imagemachines.vis.accentuation import accentuate

        image = options.pop("image")
        return accentuate(model, image, list(units), **options)
    if engine != "render":
        raise ValueError(f"unknown engine {engine!r}; the engines are {', '.join(ENGINES)}")
    from imagemachines.vis import render

    return render(model, units, **options)
