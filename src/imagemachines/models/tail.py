"""The rest of a network after a layer: ``tail(tap(x)[layer]) == model(x)``.

:meth:`LoadedModel.tap` runs a network up to a layer (the head); concept importance, ablation and deletion
curves need the other half, from the layer's output to the class logits. ``torch.fx`` traces the network with
the layer kept as one call, and the tail is the part of the traced graph that depends on that call. A layer
whose tail also reads values computed before it (a skip connection around it, a layer called twice) is not a
cut of the network and is refused with the reason; so is a network that cannot be traced.
"""

from __future__ import annotations

from torch import fx, nn

from imagemachines.errors import UserError
from imagemachines.models.loaded import LoadedModel
from imagemachines.models.taps import LOGITS


class NotACut(UserError):
    """The network cannot be split at this layer into a head and a tail."""


class _KeepLayer(fx.Tracer):
    """Trace *layer* as one call (a leaf) and descend into every container around it."""

    def __init__(self, layer: str):
        super().__init__()
        self.layer = layer

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname == self.layer:
            return True
        if self.layer.startswith(qualname + "."):
            return False
        return super().is_leaf_module(m, qualname)


def _trace(model: LoadedModel, layer: str) -> fx.Graph:
    try:
        return _KeepLayer(layer).trace(model.module)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means: no tail for this network
        raise NotACut(f"{model.name!r} cannot be split at {layer!r}: its forward pass cannot be traced "
                      f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}).") from None


def network_tail(model: LoadedModel, layer: str) -> fx.GraphModule:
    """A module mapping *layer*'s output to the network's output (the logits); it shares the model's weights.

    :class:`NotACut` when the rest of the network also reads values from before *layer* or the layer runs more
    than once; :class:`~imagemachines.errors.UnknownLayer` when the model has no such layer.
    """
    model.layer(layer)
    if layer == LOGITS:
        raise NotACut("The logits are the network's output; there is nothing after them. Choose a layer before.")
    graph = _trace(model, layer)
    calls = [n for n in graph.nodes if n.op == "call_module" and n.target == layer]
    if len(calls) != 1:
        raise NotACut(f"{layer!r} runs {len(calls)} times in one forward pass of {model.name!r}; the rest of the "
                      "network after it is not one piece. Choose another layer.")
    cut = calls[0]
    order = {n: i for i, n in enumerate(graph.nodes)}
    from_input = _descendants([n for n in graph.nodes if n.op == "placeholder"])
    from_cut = _descendants([cut])
    output = next(n for n in graph.nodes if n.op == "output")
    if not any(n in from_cut for n in output.all_input_nodes):
        raise NotACut(f"The output of {model.name!r} does not depend on {layer!r}.")
    tail = fx.Graph()
    env: dict[fx.Node, fx.Node] = {cut: tail.placeholder("activations")}

    def copy(node: fx.Node) -> fx.Node:
        if node in env:
            return env[node]
        if node in from_input and node not in from_cut:
            raise NotACut(f"The rest of {model.name!r} after {layer!r} also reads {node.name!r}, computed before "
                          f"it (a skip connection around the layer), so {layer!r} alone does not determine the "
                          "output. Choose the block that contains it (`imagemachines layers MODEL`).")
        for arg in sorted(node.all_input_nodes, key=order.__getitem__):
            copy(arg)
        env[node] = tail.node_copy(node, lambda n: env[n])
        return env[node]

    for node in graph.nodes:
        if node in from_cut and node is not cut and node.op != "output":
            copy(node)
    tail.output(fx.map_arg(output.args[0], copy))
    module = fx.GraphModule(model.module, tail, class_name="NetworkTail")
    module.graph.eliminate_dead_code()
    module.recompile()
    return module.eval()


def _descendants(starts: list[fx.Node]) -> set[fx.Node]:
    """*starts* and every node that uses them, directly or not."""
    seen: set[fx.Node] = set()
    todo = list(starts)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(node.users)
    return seen
