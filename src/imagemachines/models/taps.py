"""Run a network only as far as it must go: capture named layers and stop the forward pass there.

This is the engine's main speed lever. Forward hooks record the outputs of the wanted modules; once the last
of them has fired (counting modules that a forward pass calls more than once), a private exception ends the
pass, so nothing after the target layer is computed. The recorded tensors keep their autograd graph.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

LOGITS = "logits"  # pseudo-layer: the network's output


class _Done(Exception):
    pass


class LayerTap(nn.Module):
    """``tap(x) -> {layer: output}`` for the given layers, computing no more of *model* than needed.

    *calls* maps a module name to how many times one forward pass calls it (from the dry run in
    :meth:`LoadedModel.layers`); the tap keeps the last call's output, like ``named_modules`` users expect.
    *changed_later* names the modules whose output the pass then changes in place (found by the same dry run):
    their outputs are copied when the pass goes on, so they hold what the layer computed.
    """

    def __init__(self, model: nn.Module, layers: Iterable[str], calls: dict[str, int] | None = None,
                 changed_later: Iterable[str] = ()):
        super().__init__()
        self.model = model
        self.layers = tuple(dict.fromkeys(layers))
        self._needs_output = LOGITS in self.layers
        modules = dict(model.named_modules())
        self._targets = {name: modules[name] for name in self.layers if name != LOGITS}
        self._calls = {name: (calls or {}).get(name, 1) for name in self._targets}
        self._copy = set(changed_later) & set(self._targets)  # outputs the network then changes in place

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs: dict[str, torch.Tensor] = {}
        seen: dict[str, int] = dict.fromkeys(self._targets, 0)
        handles = []

        def make_hook(name: str):
            def hook(_module, _inputs, output):
                seen[name] += 1
                if seen[name] == self._calls[name]:
                    done = not self._needs_output and all(seen[n] >= self._calls[n] for n in self._targets)
                    # an output the pass goes on to change in place (a BatchNorm before ReLU(inplace=True)) is
                    # copied, so the tap returns what the layer computed; the last hook ends the pass: no copy
                    outputs[name] = output.clone() if name in self._copy and not done else output
                    if done:
                        raise _Done

            return hook

        for name, module in self._targets.items():
            handles.append(module.register_forward_hook(make_hook(name)))
        try:
            out = self.model(x)
            if self._needs_output:
                outputs[LOGITS] = out
        except _Done:
            pass
        finally:
            for h in handles:
                h.remove()
        return outputs
