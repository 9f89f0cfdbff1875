"""What to visualize: a unit of a layer (a channel, one neuron of a channel, or a class logit)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imagemachines.errors import UserError
from imagemachines.models.taps import LOGITS

_UNIT_RE = re.compile(r"^(?P<layer>[^:@\s]+):(?P<channel>\d+)(?:@(?P<x>\d+),(?P<y>\d+))?$")


@dataclass(frozen=True)
class Unit:
    """Channel *channel* of *layer*; with *x*, *y* the single neuron at that position.

    The layer ``logits`` is the network's output, so ``Unit("logits", 281)`` is the class-281 logit.
    Text form: ``features.14:40``, ``features.14:40@3,3``, ``logits:281``.
    """

    layer: str
    channel: int
    x: int | None = None
    y: int | None = None

    def __post_init__(self) -> None:
        if (self.x is None) != (self.y is None):
            raise UserError("A neuron needs both x and y (or neither, for the whole channel).")
        if self.channel < 0 or (self.x is not None and (self.x < 0 or self.y < 0)):
            raise UserError(f"Unit indices must not be negative: {self}.")

    @property
    def kind(self) -> str:
        if self.layer == LOGITS:
            return "class"
        return "channel" if self.x is None else "neuron"

    def __str__(self) -> str:
        pos = f"@{self.x},{self.y}" if self.x is not None else ""
        return f"{self.layer}:{self.channel}{pos}"

    @property
    def slug(self) -> str:
        """A file-name-safe label."""
        pos = f"_x{self.x}_y{self.y}" if self.x is not None else ""
        return f"{self.layer.replace('.', '-')}_{self.channel}{pos}"

    @classmethod
    def parse(cls, text: str) -> Unit:
        m = _UNIT_RE.match(text.strip())
        if not m:
            raise UserError(
                f"Cannot read unit {text!r}: write LAYER:CHANNEL, LAYER:CHANNEL@X,Y or logits:CLASS "
                "(e.g. features.14:40)."
            )
        x, y = m["x"], m["y"]
        return cls(m["layer"], int(m["channel"]), None if x is None else int(x), None if y is None else int(y))


def parse_channels(spec: str, n_channels: int) -> list[int]:
    """'all', '5', '0-63', '1,4,9-12' -> sorted channel list, checked against *n_channels*."""
    spec = spec.strip().lower()
    if spec == "all":
        return list(range(n_channels))
    out: list[int] = []
    try:
        for part in spec.split(","):
            a, _, b = part.partition("-")
            lo, hi = int(a), int(b) if b else int(a)
            if hi < lo:
                raise ValueError
            out.extend(range(lo, hi + 1))
    except ValueError:
        raise UserError(f"Cannot read channels {spec!r}: write all, N, A-B or a comma list like 0-7,12.") from None
    bad = [c for c in out if not 0 <= c < n_channels]
    if bad:
        raise UserError(f"Channels {bad[:5]} are out of range: this layer has channels 0 to {n_channels - 1}.")
    return sorted(dict.fromkeys(out))
