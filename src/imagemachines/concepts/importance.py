"""How much the class score depends on each concept: total Sobol indices (CRAFT) and the plain ablation effect.

Both work on whole paintings at the layer: each feature-map cell's activation vector *a* has non-negative
coefficients *u* on the concepts (:func:`cell_coefficients`), and the rest of the network (the *tail*, layer →
logits) turns a feature map into class logits.

* **Sobol** (CRAFT's estimator): the cells' coefficients are scaled by random masks m ∈ [0, 1]ᵏ, one factor per
  concept for the whole painting, the masked reconstruction ``(u ⊙ m) W`` goes through the tail, and the total
  Sobol index of each mask factor for the class logit is estimated (:mod:`.sobol`), then averaged over the
  class's paintings. It counts interactions, and is blind to the sign of the effect.
* **Ablation**: the class logit of the real activations minus the class logit with the concept taken out of them,
  ``max(a − u_j w_j, 0)`` per cell (the layer's output is never negative), averaged over the paintings. Its sign
  says whether the concept speaks for (> 0) or against the class.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from imagemachines.concepts.factorization import project
from imagemachines.concepts.sobol import design, total_indices

Tail = Callable[[torch.Tensor], torch.Tensor]
ROWS = 256  # feature maps per pass through the tail


def cell_coefficients(maps: torch.Tensor, W: np.ndarray) -> torch.Tensor:
    """``[n, h, w, k]``: every cell's non-negative least-squares coefficients on the concepts."""
    n, c, h, w = maps.shape
    cells = maps.permute(0, 2, 3, 1).reshape(-1, c)
    return torch.from_numpy(project(cells, W)).reshape(n, h, w, len(W))


def class_logits(tail: Tail, maps: torch.Tensor, cls: int, rows: int = ROWS) -> torch.Tensor:
    """``[n]``: the class logit of each feature map, through the tail in batches."""
    device = _device(tail)
    out = []
    with torch.inference_mode():
        for s in range(0, len(maps), rows):
            out.append(tail(maps[s:s + rows].to(device)).float()[:, cls].cpu())
    return torch.cat(out) if out else torch.zeros(0)


def reconstruct(coefficients: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``[…, h, w, k] × [k, C] → […, C, h, w]``: feature maps from cell coefficients."""
    return torch.movedim(coefficients @ W, -1, -3)


def sobol_importance(tail: Tail, coefficients: torch.Tensor, W: np.ndarray, cls: int, *, n_design: int = 32,
                     seed: int = 0, rows: int = ROWS, on_image: Callable[[], None] | None = None) -> np.ndarray:
    """``[n_images, k]``: the total Sobol index of each concept for the class logit, per painting (CRAFT).

    The design is the same for every painting (seeded), so the result is deterministic for a given seed.
    """
    k = len(W)
    masks = torch.from_numpy(design(k, n_design, seed))
    Wt = torch.from_numpy(np.asarray(W, dtype=np.float32))
    out = np.zeros((len(coefficients), k))
    for i, u in enumerate(coefficients):
        logits = []
        for s in range(0, len(masks), rows):
            m = masks[s:s + rows]
            logits.append(class_logits(tail, reconstruct(u[None] * m[:, None, None, :], Wt), cls, rows))
        out[i] = total_indices(torch.cat(logits).numpy(), k, n_design)
        if on_image is not None:
            on_image()
    return out


def without(maps: torch.Tensor, coefficients: torch.Tensor, W: np.ndarray, concepts: list[int]) -> torch.Tensor:
    """*maps* with the given concepts taken out of every cell: ``max(a − Σ u_j w_j, 0)``."""
    if not concepts:
        return maps
    idx = torch.tensor(concepts, dtype=torch.long)
    Wt = torch.from_numpy(np.asarray(W, dtype=np.float32))[idx]
    return (maps - reconstruct(coefficients[..., idx], Wt)).clamp_min(0)


def only(coefficients: torch.Tensor, W: np.ndarray, concepts: list[int]) -> torch.Tensor:
    """The feature maps made of the given concepts alone: ``Σ u_j w_j`` per cell (zeros for none)."""
    n, h, w, _ = coefficients.shape
    if not concepts:
        return torch.zeros(n, W.shape[1], h, w)
    idx = torch.tensor(concepts, dtype=torch.long)
    return reconstruct(coefficients[..., idx], torch.from_numpy(np.asarray(W, dtype=np.float32))[idx])


def ablation_importance(tail: Tail, maps: torch.Tensor, coefficients: torch.Tensor, W: np.ndarray, cls: int,
                        rows: int = ROWS) -> np.ndarray:
    """``[n_images, k]``: the class logit's drop when each concept alone is taken out of the activations."""
    base = class_logits(tail, maps, cls, rows)
    return np.stack([(base - class_logits(tail, without(maps, coefficients, W, [j]), cls, rows)).numpy()
                     for j in range(len(W))], axis=1)


def _device(tail) -> torch.device:
    p = next(iter(tail.parameters()), None) if isinstance(tail, torch.nn.Module) else None
    return p.device if p is not None else torch.device("cpu")
