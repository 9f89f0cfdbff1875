"""Errors a user can act on.

Every exception raised for bad input derives from :class:`UserError`; its message says what went wrong
*and what to do*. The CLI prints it without a traceback and exits with status 2; the server turns it into a
4xx response.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input or environment that the user can fix; the message says how."""


class UnknownModel(UserError):
    """A model name that is neither in the registry nor a file or run directory."""


class UnknownLayer(UserError):
    """A layer name the model does not have."""


class UnitOutOfRange(UserError):
    """A channel, class or neuron position outside the layer's range."""


class WeightsUnavailable(UserError):
    """Pretrained weights could not be downloaded or read."""


class BadCheckpoint(UserError):
    """A weights file or run directory that cannot be loaded."""


def close_matches(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Names among *candidates* that look like *name* (case-insensitive), best first."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    prefix = [c for c in candidates if c.lower().startswith(name.lower()) and c.lower() not in hits]
    return [lowered[h] for h in hits] + prefix[: max(0, n - len(hits))]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """' Did you mean: a, b?' or '' when nothing is close."""
    hits = close_matches(name, candidates)
    return f" Did you mean: {', '.join(hits)}?" if hits else ""
