"""The common way to find a unit's top images, kept as the index benchmark's reference: forward hooks keep
every chosen layer's full activations of every image (on the CPU), and at the end each layer is reduced to
per-image spatial maxima and fully sorted per unit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from imagemachines.models import LOGITS, LoadedModel


class HookEverything:
    """Collects full activations of *layers* for every batch; :meth:`finish` sorts and returns the top-k."""

    def __init__(self, model: LoadedModel, layers: Sequence[str]):
        self.model = model
        self.layers = list(layers)
        self.store: dict[str, list[torch.Tensor]] = {name: [] for name in self.layers}
        modules = dict(model.module.named_modules())
        self.handles = [modules[name].register_forward_hook(self._hook(name))
                        for name in self.layers if name != LOGITS]

    def _hook(self, name: str):
        def hook(_m, _i, out):
            self.store[name].append(out.detach().float().cpu().clone())
        return hook

    def add(self, batch: torch.Tensor) -> None:
        with torch.inference_mode():
            out = self.model.module(batch)
        if LOGITS in self.store:
            self.store[LOGITS].append(out.detach().float().cpu().clone())

    def run(self, batches: Iterable[torch.Tensor]) -> None:
        for x in batches:
            self.add(x)

    def finish(self, k: int = 32) -> dict[str, torch.Tensor]:
        """Per layer: [C, k] indices of the top-k images by spatial maximum (full sort over all images)."""
        result = {}
        for name, parts in self.store.items():
            acts = torch.cat(parts)
            maxima = acts.flatten(2).amax(2) if acts.ndim == 4 else acts
            result[name] = maxima.T.argsort(dim=1, descending=True)[:, :k]
        return result

    def close(self) -> None:
        for h in self.handles:
            h.remove()
