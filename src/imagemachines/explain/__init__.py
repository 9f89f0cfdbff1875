"""Explain one painting: where a unit fires, where a class's evidence lies, which units it drives most.

>>> from imagemachines.explain import explain_image
>>> e = explain_image(model, painting, index=open_index("paintings-index"))   # deepest block by default
>>> [(h.channel, h.value, h.percentile) for h in e.units[:3]], e.similar[:3]

``imagemachines explain MODEL IMAGE`` writes the PNG overlays, ``explain.html`` and ``explain.json``
(:mod:`imagemachines.explain.page`). Attribution methods live in :mod:`imagemachines.attribution`.
"""

from __future__ import annotations

from imagemachines.explain.lookup import Explanation, UnitHit, check_index_model, explain_image
from imagemachines.explain.targets import ClassMaps, class_maps, parse_class, parse_unit, unit_map

__all__ = ["ClassMaps", "Explanation", "UnitHit", "check_index_model", "class_maps", "explain_image",
           "parse_class", "parse_unit", "unit_map"]
