"""Classification heads and layer freezing for fine-tuning torchvision architectures.

Shared by training (``imagemachines train``) and loading
(:func:`imagemachines.models.checkpoint.load_run_dir`): both build the same network from a few words
(architecture, number of classes, head, auxiliary head), so a run directory needs nothing but its JSON and a
safetensors file.

* ``seed`` head: global average pool → 1024 ReLU → classes, the head of the 2018 Keras seed
  (``GlobalAveragePooling2D → Dense(1024, relu) → Dense(classes)``). torchvision networks already pool before
  their last linear layer, so the head replaces that layer.
* ``linear`` head: the last linear layer swapped for one with *classes* outputs.

Inception-style networks (``inception_v3``, ``googlenet``) are built with ``transform_input=False`` and the
TensorFlow normalisation mean = std = 0.5 (inputs in [-1, 1], Keras ``preprocess_input``); for the pretrained
weights this is exactly what torchvision's ``transform_input=True`` computes internally.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from imagemachines.errors import UnknownLayer, UserError, did_you_mean

HEADS = ("seed", "linear")
SEED_HIDDEN = 1024
TF_NORM = (0.5, 0.5, 0.5)
AUX_ARCHS = ("inception_v3", "googlenet")
# Keras InceptionV3 block names -> torchvision module names (mixed0..mixed10).
KERAS_MIXED = dict(zip(
    [f"mixed{i}" for i in range(11)],
    ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
     "Mixed_7a", "Mixed_7b", "Mixed_7c"],
    strict=True,
))
# The seed froze ``model.layers[:164]``, "up to and including mixed5" = torchvision Mixed_6c.
SEED_FREEZE = {"inception_v3": "Mixed_6c"}


@dataclass
class Backbone:
    """A torchvision network with its preprocessing, before the head is replaced."""

    module: nn.Module
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    weights_id: str
    head: str = ""  # the classifier's module name once replaced


def _is_weights_file(weights: str) -> bool:
    p = Path(weights).expanduser()
    return p.suffix in (".pth", ".pt", ".safetensors") or p.is_file()


def load_backbone(arch: str, weights: str = "imagenet") -> Backbone:
    """*arch* with *weights*: ``imagenet``, ``DEFAULT``, an enum name, ``none`` or a state-dict file."""
    from imagemachines.models.registry import load_registry_model, load_weights_file

    if weights.lower() == "none":
        from imagemachines.models.registry import _check_name

        _check_name(arch)
        kwargs = {"init_weights": True} if arch in AUX_ARCHS else {}
        module = torchvision.models.get_model(arch, weights=None, **kwargs)
        size = 299 if arch == "inception_v3" else 224
        loaded = None
    elif _is_weights_file(weights):
        loaded = load_weights_file(arch, Path(weights).expanduser())
    else:
        loaded = load_registry_model(arch, weights, device="cpu")
    if loaded is not None:
        module, size = loaded.module, loaded.input_size
        mean, std, wid = loaded.mean, loaded.std, loaded.weights_id
    else:
        from imagemachines.models.registry import IMAGENET_MEAN, IMAGENET_STD

        mean, std, wid = IMAGENET_MEAN, IMAGENET_STD, "random-init"
    if hasattr(module, "transform_input"):
        module.transform_input = False
        mean = std = TF_NORM
    module.requires_grad_(True).train()
    return Backbone(module, tuple(mean), tuple(std), int(size), wid)


def final_linear(module: nn.Module) -> tuple[str, nn.Linear]:
    """The network's classifier: its last ``nn.Linear`` outside any auxiliary head."""
    last = None
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear) and "aux" not in name.split(".")[0].lower():
            last = (name, m)
    if last is None:
        raise UserError(
            f"{type(module).__name__} has no linear classifier to replace. Choose an architecture that "
            "ends in a linear layer (resnet, mobilenet, efficientnet, inception_v3, vgg, densenet, convnext, vit…)."
        )
    return last


def make_head(kind: str, in_features: int, num_classes: int) -> nn.Module:
    """The new classifier: ``seed`` (1024 ReLU, then classes) or ``linear``."""
    if kind == "seed":
        hidden = nn.Linear(in_features, SEED_HIDDEN)
        return nn.Sequential(hidden, nn.ReLU(), nn.Linear(SEED_HIDDEN, num_classes))
    if kind == "linear":
        return nn.Linear(in_features, num_classes)
    raise UserError(f"Unknown head {kind!r}.{did_you_mean(kind, HEADS)} Use --head seed or --head linear.")


def replace_head(module: nn.Module, arch: str, kind: str, num_classes: int) -> str:
    """Swap the classifier for a new *kind* head with *num_classes* outputs; returns the head's module name.

    With the seed head, InceptionV3's dropout before the classifier is removed: the Keras seed had none.
    """
    name, linear = final_linear(module)
    module.set_submodule(name, make_head(kind, linear.in_features, num_classes))
    if kind == "seed" and arch == "inception_v3":
        module.dropout = nn.Identity()
    return name


def configure_aux(module: nn.Module, arch: str, num_classes: int, enabled: bool) -> bool:
    """Remove the auxiliary classifiers (the seed had none) or give them *num_classes* outputs.

    Returns whether the network keeps auxiliary outputs (only inception_v3 and googlenet have any).
    """
    if arch == "inception_v3":
        if enabled:
            module.AuxLogits.fc = nn.Linear(module.AuxLogits.fc.in_features, num_classes)
        else:
            module.AuxLogits = None
    elif arch == "googlenet":
        if enabled:
            for aux in (module.aux1, module.aux2):
                aux.fc2 = nn.Linear(aux.fc2.in_features, num_classes)
        else:
            module.aux1 = module.aux2 = None
    else:
        return False
    module.aux_logits = enabled
    return enabled


def build_classifier(
    arch: str, num_classes: int, head: str, aux: bool, weights: str = "imagenet"
) -> Backbone:
    """*arch* with *weights* and a new *head* for *num_classes*; auxiliary heads kept only with *aux*."""
    if num_classes < 2:
        raise UserError(f"Training needs at least 2 classes, got {num_classes}.")
    make_head(head, 1, 1)  # validates the name before the (slow) build
    bb = load_backbone(arch, weights)
    if aux and arch not in AUX_ARCHS:
        raise UserError(
            f"{arch} has no auxiliary classifier; --aux-weight only applies to {', '.join(AUX_ARCHS)}."
        )
    configure_aux(bb.module, arch, num_classes, aux)
    bb.head = replace_head(bb.module, arch, head, num_classes)
    return bb


def rebuild_classifier(arch: str, num_classes: int, head: str, aux: bool) -> nn.Module:
    """The untrained network of a saved run (weights are loaded afterwards)."""
    from imagemachines.models.registry import _check_name

    _check_name(arch)
    kwargs = {"init_weights": False, "aux_logits": True} if arch in AUX_ARCHS else {}
    module = torchvision.models.get_model(arch, weights=None, **kwargs)
    if hasattr(module, "transform_input"):
        module.transform_input = False
    configure_aux(module, arch, num_classes, aux)
    replace_head(module, arch, head, num_classes)
    return module


# -- freezing ---------------------------------------------------------------------------------------------
def _call_order(module: nn.Module, layer: str | None, input_size: int) -> tuple[list[str], int | None]:
    """Module names in first-call order of a forward pass; how many had started when *layer* ended."""
    order: list[str] = []
    seen: set[str] = set()
    done_at: list[int] = []
    handles = []

    def make_pre(name: str):
        def pre(_m, _i):
            if name not in seen:
                seen.add(name)
                order.append(name)

        return pre

    for name, m in module.named_modules():
        handles.append(m.register_forward_pre_hook(make_pre(name)))
        if name == layer:
            handles.append(m.register_forward_hook(lambda *_: done_at.append(len(order))))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(1, 3, input_size, input_size))
    except RuntimeError as exc:
        raise UserError(
            f"The network cannot run on {input_size} px images ({str(exc).splitlines()[0]}). "
            "Choose another --image-size (inception_v3 needs at least 75 px; vit/swin need 224)."
        ) from exc
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return order, (done_at[0] if done_at else None)


def resolve_freeze(arch: str, freeze_through: str | None, weights: str) -> str:
    """'auto' = the seed's choice (``Mixed_6c`` for pretrained inception_v3) else none; maps Keras names."""
    value = (freeze_through or "auto").strip()
    if value == "auto":
        return SEED_FREEZE.get(arch, "none") if weights.lower() != "none" else "none"
    if arch == "inception_v3" and value in KERAS_MIXED:
        return KERAS_MIXED[value]
    return value


def freeze_through(module: nn.Module, layer: str, input_size: int, head: str) -> list[str]:
    """Freeze every module that a forward pass runs up to and including *layer*.

    *layer* is a module name (``Mixed_6c``, ``features.7``, ``layer2``), ``none``, or ``backbone`` (everything
    before the head named *head*). Frozen parameters stop needing gradients; :func:`train_mode` keeps the
    frozen modules in eval mode so their BatchNorm statistics stay those of the pretrained network. Returns
    the names of the largest fully frozen modules, in definition order.
    """
    if layer == "none":
        return []
    if layer == "backbone":
        order, _ = _call_order(module, None, input_size)
        count = order.index(head) if head in order else len(order)
    else:
        names = [n for n, _ in module.named_modules() if n]
        if layer not in names:
            raise UnknownLayer(
                f"The network has no layer {layer!r} to freeze through.{did_you_mean(layer, names)} "
                "`imagemachines layers ARCH` lists them; --freeze-through none trains everything."
            )
        if layer == head or layer.startswith(head + "."):
            raise UserError(f"--freeze-through {layer} would freeze the new head too; choose an earlier layer.")
        order, count = _call_order(module, layer, input_size)
        if count is None:
            raise UserError(f"Layer {layer!r} is not used in the forward pass; freeze through another layer.")
    leaves: set[str] = set()
    for name in order[:count]:
        if not name:
            continue
        m = module.get_submodule(name)
        for p in m.parameters(recurse=False):
            p.requires_grad_(False)
        if next(m.children(), None) is None:
            leaves.add(name)
    return _maximal(module, leaves)


def _maximal(module: nn.Module, frozen_leaves: set[str]) -> list[str]:
    """Names of fully frozen modules whose parent is not fully frozen, in definition order."""
    full: dict[str, bool] = {}

    def visit(name: str, m: nn.Module) -> bool:
        kids = [visit(f"{name}.{k}" if name else k, c) for k, c in m.named_children()]
        own = all(not p.requires_grad for p in m.parameters(recurse=False))
        ok = own and (all(kids) if kids else name in frozen_leaves)
        full[name] = ok
        return ok

    visit("", module)
    return [n for n, ok in full.items() if n and ok and not full[n.rpartition(".")[0]]]


def frozen_modules(module: nn.Module, names: list[str]) -> list[nn.Module]:
    """The modules named by :func:`freeze_through`."""
    return [module.get_submodule(n) for n in names]


def train_mode(module: nn.Module, frozen: list[nn.Module]) -> None:
    """Training mode for everything except the frozen modules (BatchNorm statistics stay fixed there)."""
    module.train()
    for m in frozen:
        m.eval()
