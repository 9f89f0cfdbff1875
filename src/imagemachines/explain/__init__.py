"""Explain one painting: where a unit fires, where a class's evidence lies, which units it drives most.

>>> from imagemachines.explain import explain_image
>>> e = explain_image(model, painting, index=open_index("paintings-index"))   # deepest block by default
>>> [(h.channel, h.value, h.percentile) for h in e.units[:3]], e.similar[:3]

``imagemachines explain MODEL IMAGE`` writes the PNG overlays, ``explain.html`` and ``explain.json``
(:func:`imagemachines.explain.page.write_explanation`). Attribution methods: :mod:`imagemachines.attribution`.
Names are imported on first use, so the CLI (and ``imagemachines --help``) does not pay for torch here.
"""

from __future__ import annotations

from imagemachines.lazy import lazy_exports

_EXPORTS = {
    "Explanation": "lookup", "UnitHit": "lookup", "check_index_model": "lookup", "explain_image": "lookup",
    "ClassMaps": "targets", "class_maps": "targets", "parse_class": "targets", "parse_unit": "targets",
    "unit_map": "targets",
    "Options": "page", "write_explanation": "page",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
