"""An accentuation job for the render scheduler: what the cache key is computed from, and what the engine gets.

It goes through the same scheduler as renders (queue, priority by size, batching, previews, cancellation, disk
cache, the same limits): a batch is the jobs that share the painting, the regulariser's layer, size and steps,
each with its own unit, strength and seed. The painting's pixels travel with the job (``Job.payload``, dropped
when the job ends), never in the spec: the spec names the painting by where it came from and by a digest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from imagemachines.serve.scheduler import UnitOfSpec

KIND = "accentuation"


@dataclass(frozen=True)
class AccentSpec(UnitOfSpec):
    """A fully resolved accentuation request (defaults filled in)."""

    model: str
    layer: str
    channel: int
    x: int | None
    y: int | None
    painting: str  # 32 hex digits: the painting's file (index) or upload bytes, hashed
    source: str    # where it came from, for people: "index/<id>/<image>" or "upload/<id>"
    strength: float
    reg_layer: str
    size: int
    steps: int
    seed: int

    method = "accentuate"  # what status answers and download names call the method (not a field)

    @property
    def batch_key(self) -> tuple:
        """Jobs with equal batch keys share one engine call: one painting, one regulariser, one size and length."""
        return (self.model, KIND, self.painting, self.reg_layer, self.size, self.steps)

    def as_dict(self) -> dict:
        return {"kind": KIND, **asdict(self)}

    @classmethod
    def from_request(cls, request: dict) -> AccentSpec:
        """The spec stored with a cached result (``as_dict``); TypeError when it is not one."""
        fields = {k: v for k, v in request.items() if k != "kind"}
        return cls(**fields)

    def engine_call(self, specs: list[AccentSpec], payload: Any) -> tuple[list, dict]:
        """The engine's arguments for a batch of *specs* (all with this batch key) and the painting *payload*:
        one target (unit, strength) per job, the options they share."""
        from imagemachines.vis.accentuation import AccentTarget

        if payload is None:
            from imagemachines.errors import UserError

            raise UserError("The painting of this accentuation is no longer on the server; ask again.")
        targets = [AccentTarget(s.unit(), s.strength) for s in specs]
        return targets, {"engine": "accentuate", "image": payload, "reg_layer": self.reg_layer, "size": self.size,
                         "steps": self.steps, "painting_name": self.source}
