"""Layer output sizes at any input size, without touching the real network.

A copy of the network on PyTorch's ``meta`` device (shapes only, no data, no compute) runs a dry pass at the
asked size. The real module is never hooked, so this is safe while another thread renders with it.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections import OrderedDict

import torch
from torch import nn

from imagemachines.errors import UserError


def meta_copy(module: nn.Module) -> nn.Module:
    """*module* with every parameter and buffer replaced by a data-less ``meta`` tensor (no weights copied)."""
    memo: dict[int, torch.Tensor] = {}
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        empty = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = nn.Parameter(empty, requires_grad=tensor.requires_grad) \
            if isinstance(tensor, nn.Parameter) else empty
    return copy.deepcopy(module, memo)


class ShapeTable:
    """``spatial(layer, size)``: (height, width) of a layer's output for *size*-px images (or *size* = (height,
    width)), cached per size."""

    def __init__(self, module: nn.Module, keep: int = 32):
        self._module = meta_copy(module).eval()
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, dict[str, tuple[int, int]]] = OrderedDict()
        self._keep = keep

    def spatial(self, layer: str, size: int | tuple[int, int]) -> tuple[int, int] | None:
        """(height, width) of *layer*'s output at *size*; None when the layer has no spatial output."""
        return self._sizes(size).get(layer)

    def _sizes(self, size: int | tuple[int, int]) -> dict[str, tuple[int, int]]:
        with self._lock:
            if size in self._cache:
                self._cache.move_to_end(size)
                return self._cache[size]
            sizes: dict[str, tuple[int, int]] = {}
            shape = (size, size) if isinstance(size, int) else tuple(size)

            def hook(name):
                def record(_m, _i, out):
                    if isinstance(out, torch.Tensor) and out.ndim == 4:
                        sizes[name] = (int(out.shape[-2]), int(out.shape[-1]))
                return record

            handles = [m.register_forward_hook(hook(n)) for n, m in self._module.named_modules() if n]
            try:
                with torch.no_grad():
                    self._module(torch.zeros(1, 3, *shape, device="meta"))
            except RuntimeError as exc:
                side = str(shape[0]) if shape[0] == shape[1] else f"{shape[1]}×{shape[0]}"
                raise UserError(f"The network cannot take {side}-px images ({str(exc).splitlines()[0]}); "
                                "ask for a larger size.") from None
            finally:
                for h in handles:
                    h.remove()
            self._cache[size] = sizes
            while len(self._cache) > self._keep:
                self._cache.popitem(last=False)
            return sizes
