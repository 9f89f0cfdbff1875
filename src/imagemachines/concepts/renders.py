"""A picture of each concept: a feature visualization of its direction at the layer, and its value.

Each concept becomes a :class:`imagemachines.vis.Direction` objective, rendered with the default method, all
concepts of all classes in one batch. The direction is the concept's *dual* vector: row j of the pseudo-inverse
of the class's W (unit length), whose dot product with an activation vector is that vector's least-squares
coefficient on concept j, the other concepts of the class held apart. The concept vector w_j itself would do
worse: concept vectors are non-negative and share the class's strong channels, so maximising ⟨a, w_j⟩ draws
every render to the same picture (on the portraits of the shared paintings, four renders with w_j scored their
own concept above every other concept twice; with the dual vector three times). Like ``explain``'s unit
renders it works at the module before the layer's closing ReLU when the layer ends in one
(:func:`imagemachines.explain.page.render_layer`: a clipped direction that is off everywhere has no gradient).
The render's *value* is measured the way crops are: the layer's activations over the finished 8-bit picture
(at the size it was rendered, as the engine scores renders), spatially averaged, projected on the class's
concepts; its coefficient on its own concept is on the same scale as the coefficients of the concept's best
crops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from imagemachines.concepts.factorization import project
from imagemachines.models.loaded import LoadedModel


def render_concepts(model: LoadedModel, layer: str, classes: Sequence, settings, *, progress: bool = True,
                    on_step: Callable[[float], None] | None = None) -> None:
    """Render every concept of *classes* (:class:`~imagemachines.concepts.result.ClassConcepts`) and set each
    concept's ``render`` and ``render_value``. *on_step(fraction done)* is called after every step (it may raise
    to stop the render)."""
    from tqdm.auto import tqdm

    from imagemachines.explain.page import render_layer
    from imagemachines.vis import Direction, render

    targets = [(c, j) for c in classes for j in range(c.k)]
    if not targets:
        return
    duals = {id(c): dual_vectors(c.W) for c in classes}
    vectors = np.stack([duals[id(c)][j] for c, j in targets])
    at = render_layer(model, layer)
    with tqdm(total=settings.render_steps, desc=f"rendering {len(targets)} concepts", unit="step",
              disable=not progress, leave=False) as bar:
        pictures = render(model, Direction(at, torch.from_numpy(vectors)), images=len(targets),
                          method=settings.method, size=settings.render_size, steps=settings.render_steps,
                          seed=settings.seed, on_progress=lambda p: _step(bar, p, on_step))
    values = concept_values(model, layer, [r.image for r in pictures])
    for (c, j), r, value in zip(targets, pictures, values, strict=True):
        c.concepts[j].render = r.image
        c.concepts[j].render_value = float(project(value[None], c.W)[0, j])


def dual_vectors(W: np.ndarray) -> np.ndarray:
    """``[k, C]``: unit-length rows of the pseudo-inverse of *W* (transposed): ``dual[j] · a`` is the least-squares
    coefficient of *a* on concept j."""
    dual = np.linalg.pinv(np.asarray(W, dtype=np.float64)).T
    return (dual / np.maximum(np.linalg.norm(dual, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _step(bar, progress, on_step) -> None:
    bar.update(1)
    if on_step is not None:
        on_step(progress.step / max(progress.total, 1))


def concept_values(model: LoadedModel, layer: str, images) -> np.ndarray:
    """``[n, C]``: the layer's spatial mean over each picture at its own size (as the render engine scores it)."""
    from torchvision.transforms.v2 import functional as TF

    tap = model.tap([layer], fast=True)
    rows = []
    with torch.inference_mode():
        for im in images:
            x = model.normalize(TF.pil_to_tensor(im.convert("RGB"))[None].float() / 255)
            rows.append(tap(x.to(model.device))[layer].float().mean(dim=(2, 3)).cpu()[0])
    return torch.stack(rows).numpy()
