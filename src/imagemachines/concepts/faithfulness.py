"""Do the concepts matter? Deletion and insertion curves, and how much of the class the factorisation keeps.

Every curve is the class probability (softmax over the model's classes, mean over the class's paintings) after
0, 1, … k steps:

* **deletion**: concepts taken out of the real activations (``max(a − Σ u_j w_j, 0)`` per cell), in order of
  importance, and in random orders (the mean of several seeded draws); and as many single *units* (channels)
  set to zero, in order of their own importance;
* **insertion**: starting from an empty layer (all zeros), concepts put in (``Σ u_j w_j``) in order of importance
  and in random orders; units put back (their real activations) in their order.

A unit's importance is its attribution to the class logit, activation × gradient summed over the cells (mean
over the paintings): exactly the logit's drop when it is zeroed if the rest of the network is linear in the layer
(global pooling and a linear classifier, as after MobileNetV2's ``features.18``), its first-order estimate
otherwise. If concepts are a better description of what the network uses than units, the concept curves fall
faster (deletion) and rise faster (insertion) than the unit curves, and the importance order beats random order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from imagemachines.concepts.importance import ROWS, Tail, _device, class_logits, only, reconstruct


@dataclass
class Curves:
    """The faithfulness numbers of one class (see the module doc); probabilities are means over paintings."""

    deletion: dict[str, list[float]]    # "concepts", "random", "units": probability after 0…k removals
    insertion: dict[str, list[float]]   # the same, from an empty layer, 0…k insertions
    unit_order: list[int]               # the units removed first (channel numbers), most important first
    random_draws: int
    probability: float                  # mean class probability of the real activations
    reconstruction_probability: float   # … of the reconstruction U W
    baseline_logit: float               # mean class logit of an empty layer (all zeros)
    logit: float                        # mean class logit of the real activations
    reconstruction_logit: float         # … of the reconstruction
    logit_share: float                  # (reconstruction − empty) / (real − empty): the class evidence kept

    def as_dict(self) -> dict:
        return {"deletion": self.deletion, "insertion": self.insertion, "unit_order": self.unit_order,
                "random_draws": self.random_draws, "probability": self.probability,
                "reconstruction_probability": self.reconstruction_probability, "baseline_logit": self.baseline_logit,
                "logit": self.logit, "reconstruction_logit": self.reconstruction_logit,
                "logit_share": self.logit_share}

    def drop(self, kind: str, steps: int) -> float:
        """How much the class probability falls after *steps* deletions of *kind*."""
        curve = self.deletion[kind]
        return curve[0] - curve[min(steps, len(curve) - 1)]


def probabilities(tail: Tail, maps: torch.Tensor, cls: int, rows: int = ROWS) -> torch.Tensor:
    """``[n]``: the class probability of each feature map."""
    device = _device(tail)
    out = []
    with torch.inference_mode():
        for s in range(0, len(maps), rows):
            out.append(torch.softmax(tail(maps[s:s + rows].to(device)).float(), dim=1)[:, cls].cpu())
    return torch.cat(out)


def unit_importance(tail: Tail, maps: torch.Tensor, cls: int, rows: int = ROWS) -> np.ndarray:
    """``[C]``: activation × gradient of the class logit per unit, summed over cells, mean over paintings."""
    device = _device(tail)
    total = torch.zeros(maps.shape[1], dtype=torch.float64)
    for s in range(0, len(maps), rows):
        x = maps[s:s + rows].to(device).requires_grad_(True)
        with torch.enable_grad():
            tail(x)[:, cls].sum().backward()
        total += (x.grad * x).detach().sum(dim=(0, 2, 3)).double().cpu()
    return (total / max(len(maps), 1)).numpy()


def zero_units(maps: torch.Tensor, units: list[int]) -> torch.Tensor:
    out = maps.clone()
    out[:, units] = 0
    return out


def keep_units(maps: torch.Tensor, units: list[int]) -> torch.Tensor:
    out = torch.zeros_like(maps)
    out[:, units] = maps[:, units]
    return out


def curves(tail: Tail, maps: torch.Tensor, coefficients: torch.Tensor, W: np.ndarray, cls: int, order: list[int], *,
           draws: int = 10, seed: int = 0, rows: int = ROWS) -> Curves:
    """Deletion and insertion curves for concepts in *order* (most important first), random orders and units."""
    k = len(W)
    rng = np.random.default_rng(seed)
    randoms = [list(map(int, rng.permutation(k))) for _ in range(draws)]
    units = [int(u) for u in np.argsort(-unit_importance(tail, maps, cls, rows), kind="stable")[:k]]

    def mean_p(x: torch.Tensor) -> float:
        return float(probabilities(tail, x, cls, rows).mean())

    Wt = torch.from_numpy(np.asarray(W, dtype=np.float32))

    def part(j: int) -> torch.Tensor:  # concept j's share of every cell: u_j w_j
        return reconstruct(coefficients[..., j:j + 1], Wt[j:j + 1])

    def concept_deletion(seq: list[int]) -> list[float]:
        running, out = maps.clone(), [mean_p(maps)]
        for j in seq:
            running -= part(j)
            out.append(mean_p(running.clamp_min(0)))
        return out

    def concept_insertion(seq: list[int]) -> list[float]:
        running = torch.zeros_like(maps)
        out = [mean_p(running)]
        for j in seq:
            running += part(j)
            out.append(mean_p(running))
        return out

    deletion = {"concepts": concept_deletion(order),
                "random": np.mean([concept_deletion(r) for r in randoms], axis=0).tolist(),
                "units": [mean_p(zero_units(maps, units[:s])) for s in range(k + 1)]}
    insertion = {"concepts": concept_insertion(order),
                 "random": np.mean([concept_insertion(r) for r in randoms], axis=0).tolist(),
                 "units": [mean_p(keep_units(maps, units[:s])) for s in range(k + 1)]}
    recon = only(coefficients, W, list(range(k)))
    empty = torch.zeros_like(maps[:1])
    real_logit = float(class_logits(tail, maps, cls, rows).mean())
    recon_logit = float(class_logits(tail, recon, cls, rows).mean())
    base_logit = float(class_logits(tail, empty, cls, rows).mean())
    gap = real_logit - base_logit
    return Curves(deletion=deletion, insertion=insertion, unit_order=units, random_draws=draws,
                  probability=deletion["concepts"][0], reconstruction_probability=insertion["concepts"][-1],
                  baseline_logit=base_logit, logit=real_logit, reconstruction_logit=recon_logit,
                  logit_share=(recon_logit - base_logit) / gap if abs(gap) > 1e-12 else float("nan"))
