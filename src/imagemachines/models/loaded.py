"""A loaded model: the network, its preprocessing, its class names and its layer table."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from imagemachines.errors import UnitOutOfRange, UnknownLayer, did_you_mean
from imagemachines.models.taps import LOGITS, LayerTap


@dataclass(frozen=True)
class LayerInfo:
    """One tappable layer: its name (as in ``named_modules()``), module type and output shape."""

    name: str
    type: str
    channels: int
    height: int
    width: int
    block: bool  # a top-level block (shown by default); False for modules nested deeper

    def as_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "channels": self.channels,
                "height": self.height, "width": self.width}


def _is_block(name: str, modules: dict[str, nn.Module]) -> bool:
    """Top-level modules and the direct children of top-level Sequentials: the layers people browse."""
    parts = name.split(".")
    if len(parts) == 1:
        return True
    return len(parts) == 2 and isinstance(modules[parts[0]], nn.Sequential)


@dataclass
class LoadedModel:
    """A network ready for visualization: eval mode, frozen, with its preprocessing.

    ``normalize`` maps images in [0, 1] to the network's input space; ``input_size`` is the side the
    network was trained at; ``weights_id`` identifies the exact weights (used in recipes and cache keys).
    """

    name: str
    module: nn.Module
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    weights_id: str
    class_names: list[str] | None = None
    source: str = "registry"
    location: str | None = None  # how to name it on the command line when that is not `name` (a run's path)
    _layers: list[LayerInfo] | None = field(default=None, repr=False)
    _calls: dict[str, int] = field(default_factory=dict, repr=False)
    _changed_later: set[str] = field(default_factory=set, repr=False)  # outputs changed in place after the layer
    _fast: tuple | None = field(default=None, repr=False)  # (device, folded module, folded conv names)

    @classmethod
    def wrap(cls, name: str, module: nn.Module, *, device: torch.device | str = "cpu", **kw) -> LoadedModel:
        module.eval().requires_grad_(False).to(device)
        return cls(name=name, module=module, **kw)

    @property
    def device(self) -> torch.device:
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def to(self, device: torch.device | str) -> LoadedModel:
        self.module.to(device)
        self._fast = None
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB batch -> network input."""
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        return (images - mean) / std

    # -- layers -------------------------------------------------------------------------------------------
    def _dry_run(self) -> None:
        modules = dict(self.module.named_modules())
        shapes: dict[str, tuple] = {}
        calls: dict[str, int] = {}
        versions: list[tuple[str, torch.Tensor, int]] = []  # each output and its version counter when it was made
        handles = []

        def make_hook(name):
            def hook(_m, _i, out):
                calls[name] = calls.get(name, 0) + 1
                if isinstance(out, torch.Tensor) and out.ndim in (2, 4):
                    shapes[name] = tuple(out.shape[1:])
                    versions.append((name, out, out._version))

            return hook

        for name, m in modules.items():
            if name:
                handles.append(m.register_forward_hook(make_hook(name)))
        try:
            # ordinary tensors even when called under inference_mode: their version counters show in-place changes
            with torch.inference_mode(False), torch.no_grad():
                x = torch.zeros(1, 3, self.input_size, self.input_size, device=self.device)
                out = self.module(x)
        finally:
            for h in handles:
                h.remove()
        changed = {name for name, tensor, version in versions if tensor._version != version}
        versions.clear()
        layers = []
        for name, shape in shapes.items():
            c, h, w = (shape[0], 1, 1) if len(shape) == 1 else shape
            layers.append(LayerInfo(name, type(modules[name]).__name__, int(c), int(h), int(w),
                                    _is_block(name, modules)))
        if isinstance(out, torch.Tensor) and out.ndim == 2:
            layers.append(LayerInfo(LOGITS, "output", int(out.shape[1]), 1, 1, True))
        self._layers, self._calls, self._changed_later = layers, calls, changed

    def layers(self, all: bool = False) -> list[LayerInfo]:  # noqa: A002 - mirrors the CLI flag
        """The layer table in forward order: top-level blocks, or every module with *all*."""
        if self._layers is None:
            self._dry_run()
        return [layer for layer in self._layers if all or layer.block]

    def layer(self, name: str) -> LayerInfo:
        """The layer called *name*; a clear error with suggestions when there is none."""
        for layer in self.layers(all=True):
            if layer.name == name:
                return layer
        names = [layer.name for layer in self.layers(all=True)]
        raise UnknownLayer(
            f"Model {self.name!r} has no layer {name!r}.{did_you_mean(name, names)} "
            f"`imagemachines layers {self.location or self.name}` lists them."
        )

    def check_channel(self, layer: str, channel: int) -> LayerInfo:
        info = self.layer(layer)
        if not 0 <= channel < info.channels:
            what, plural = ("class", "classes") if layer == LOGITS else ("channel", "channels")
            raise UnitOutOfRange(
                f"Layer {layer!r} of {self.name!r} has {info.channels} {plural}; "
                f"{what} {channel} is out of range (use 0 to {info.channels - 1})."
            )
        return info

    def tap(self, layers, fast: bool = False) -> LayerTap:
        """A module that runs this network only up to *layers* and returns their outputs.

        With *fast*, BatchNorm is folded into the convolutions (same outputs, less work per step) and the
        network is channels_last; the folded copy is made once and kept.
        """
        for name in layers:
            self.layer(name)
        module = self.module
        if fast:
            if self._fast is None or self._fast[0] != self.device:
                from imagemachines.models.fuse import fold_batchnorm

                self.module.to(memory_format=torch.channels_last)  # same function, faster convolutions
                folded_module, folded = fold_batchnorm(self.module, self.input_size)
                self._fast = (self.device, folded_module.to(memory_format=torch.channels_last), folded)
            _, folded_module, folded = self._fast
            if folded and not folded & set(layers):
                module = folded_module
        return LayerTap(module, layers, self._calls, self._changed_later)
